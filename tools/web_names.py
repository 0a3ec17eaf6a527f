"""The web tools' short names (BrowserGym's action names) for the tool registry.

A separate, import-free module so ``tools/base.py`` can list them without importing
BrowserGym; ``tests/web`` checks the list equals the browser environment's action set.
"""

from __future__ import annotations

#: BrowserGym actions an agent may call (``exapt.sandbox.browser.action_names()``).
WEB_ACTIONS: tuple[str, ...] = (
    "noop",
    "send_msg_to_user",
    "scroll",
    "fill",
    "select_option",
    "click",
    "dblclick",
    "hover",
    "press",
    "focus",
    "clear",
    "drag_and_drop",
    "scroll_at",
    "mouse_move",
    "mouse_up",
    "mouse_down",
    "mouse_click",
    "mouse_dblclick",
    "mouse_drag_and_drop",
    "keyboard_down",
    "keyboard_up",
    "keyboard_press",
    "keyboard_type",
    "keyboard_insert_text",
    "go_back",
    "go_forward",
    "goto",
)

#: name -> dotted path of its factory in ``exapt.tools.web`` (for ``KNOWN_TOOLS``).
WEB_TOOLS: dict[str, str] = {name: f"exapt.tools.web:{name}" for name in WEB_ACTIONS}
