"""LangGraph graph builders. Each builder ``build(spec) -> StateGraph`` returns an uncompiled
graph whose nodes take the ``AgentContext`` as ``runtime.context``; ``runner.run_graph``
compiles and runs it. A variant's own graph is any ``module:build`` with that signature."""
