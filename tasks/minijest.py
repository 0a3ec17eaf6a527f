# ruff: noqa: E501  (the embedded JavaScript keeps its own line lengths)
"""A small jest-compatible test runner for the Polyglot JavaScript exercises, run by node.

Why our own: the exercises' tests need jest + babel from npm, which are not installed and
cannot be fetched inside the offline scoring sandbox. The tests use little of jest:
``describe``/``test``/``it`` (and ``xtest``/``xit``, which the benchmark runs too, as Aider's
harness does), ``beforeEach``, and the matchers ``toEqual``, ``toBe``, ``toThrow``,
``toBeInstanceOf``, ``toBeUndefined``, ``toBeDefined``, with ``.not``, ``.resolves`` and
``.rejects``. ESM needs no babel: a node loader hook treats workspace ``.js`` files as ES
modules (those with import/export statements) and resolves extensionless relative imports (``from './binary'``) as jest does.
A matcher outside this set fails the test with a message naming it, never passes silently.

The sources are kept here as text (not package data) so every install has them; the
scorer copies them into the sandbox under ``.exapt/``.
"""

from __future__ import annotations

FOLDER = ".exapt"

REGISTER = """\
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
"""

HOOKS = r"""
import { readFile } from 'node:fs/promises';

// Workspace .js files are ES modules (jest would have babel-transformed them);
// './name' resolves to './name.js' as in jest.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && /^\.\.?\//.test(specifier)
        && !/\.[cm]?js$/.test(specifier)) {
      return next(specifier + '.js', context);
    }
    throw err;
  }
}

// A file with import/export statements is an ES module; others (grep's CommonJS spec)
// keep node's default.
export async function load(url, context, next) {
  if (url.startsWith('file:///workspace/') && url.endsWith('.js')) {
    const source = await readFile(new URL(url), 'utf8');
    if (/^\s*(import|export)\b/m.test(source)) {
      return next(url, { ...context, format: 'module' });
    }
  }
  return next(url, context);
}
"""

RUNNER = r"""
import { pathToFileURL } from 'node:url';
import { inspect, isDeepStrictEqual } from 'node:util';

const root = { name: '', tests: [], children: [], beforeEach: [], parent: null };
let current = root;

function describe(name, body) {
  const block = { name, tests: [], children: [], beforeEach: [], parent: current };
  current.children.push(block);
  const saved = current;
  current = block;
  try { body(); } finally { current = saved; }
}
function test(name, fn) { current.children.push({ name, fn, block: current }); }
globalThis.describe = describe;
globalThis.xdescribe = describe;
globalThis.test = test;
globalThis.it = test;
globalThis.xtest = test;   // the benchmark runs every test, as Aider's harness does
globalThis.xit = test;
globalThis.beforeEach = (fn) => current.beforeEach.push(fn);

class MatcherError extends Error {}
const show = (v) => inspect(v, { depth: 6, breakLength: 120 });

function equals(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  if (a instanceof RegExp || b instanceof RegExp) return String(a) === String(b);
  if (a instanceof Error && b instanceof Error) return a.message === b.message && a.name === b.name;
  if (a instanceof Map || b instanceof Map || a instanceof Set || b instanceof Set) {
    return isDeepStrictEqual(a, b);
  }
  if (Array.isArray(a)) {
    return a.length === b.length && a.every((x, i) => equals(x, b[i]));
  }
  // toEqual: own enumerable keys, undefined-valued keys ignored, prototypes ignored
  const keys = (o) => Object.keys(o).filter((k) => o[k] !== undefined);
  const ka = keys(a), kb = keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equals(a[k], b[k]));
}

function thrownMatches(error, expected) {
  if (expected === undefined) return true;
  const message = error && error.message !== undefined ? String(error.message) : String(error);
  if (typeof expected === 'string') return message.includes(expected);
  if (expected instanceof RegExp) return expected.test(message);
  if (typeof expected === 'function') return error instanceof expected;
  if (expected instanceof Error) return message === expected.message;
  return false;
}

const MATCHERS = {
  toEqual: (actual, expected) => [equals(actual, expected), `expected ${show(actual)} to equal ${show(expected)}`],
  toStrictEqual: (actual, expected) => [isDeepStrictEqual(actual, expected), `expected ${show(actual)} to strictly equal ${show(expected)}`],
  toBe: (actual, expected) => [Object.is(actual, expected), `expected ${show(actual)} to be ${show(expected)}`],
  toBeInstanceOf: (actual, cls) => [actual instanceof cls, `expected ${show(actual)} to be an instance of ${cls && cls.name}`],
  toBeUndefined: (actual) => [actual === undefined, `expected ${show(actual)} to be undefined`],
  toBeDefined: (actual) => [actual !== undefined, `expected a defined value, got undefined`],
  toBeNull: (actual) => [actual === null, `expected ${show(actual)} to be null`],
  toBeTruthy: (actual) => [Boolean(actual), `expected ${show(actual)} to be truthy`],
  toBeFalsy: (actual) => [!actual, `expected ${show(actual)} to be falsy`],
  toContain: (actual, item) => [actual != null && actual.includes(item), `expected ${show(actual)} to contain ${show(item)}`],
  toHaveLength: (actual, n) => [actual != null && actual.length === n, `expected length ${n}, got ${actual && actual.length}`],
  toBeCloseTo: (actual, expected, digits = 2) => [Math.abs(actual - expected) < 10 ** -digits / 2, `expected ${show(actual)} to be close to ${show(expected)}`],
  toBeGreaterThan: (actual, n) => [actual > n, `expected ${show(actual)} > ${show(n)}`],
  toBeLessThan: (actual, n) => [actual < n, `expected ${show(actual)} < ${show(n)}`],
  toMatch: (actual, pattern) => [typeof actual === 'string' && (pattern instanceof RegExp ? pattern.test(actual) : actual.includes(pattern)), `expected ${show(actual)} to match ${show(pattern)}`],
};

function throwsMatcher(fn, expected) {
  if (typeof fn !== 'function') return [false, 'toThrow needs a function'];
  try { fn(); } catch (error) {
    return [thrownMatches(error, expected), `threw ${show(error)}, expected ${show(expected)}`];
  }
  return [false, `expected the function to throw ${expected === undefined ? '' : show(expected)}`];
}

function makeExpect(actual, negate = false, mode = null) {
  return new Proxy({}, {
    get(_target, name) {
      if (name === 'not') return makeExpect(actual, !negate, mode);
      if (name === 'resolves') return makeExpect(actual, negate, 'resolves');
      if (name === 'rejects') return makeExpect(actual, negate, 'rejects');
      if (name === 'then') return undefined;
      const check = (value, args, viaRejects) => {
        let ok, message;
        if (name === 'toThrow' || name === 'toThrowError') {
          [ok, message] = viaRejects
            ? [thrownMatches(value, args[0]), `rejected with ${show(value)}, expected ${show(args[0])}`]
            : throwsMatcher(value, args[0]);
        } else if (Object.hasOwn(MATCHERS, name)) {
          [ok, message] = MATCHERS[name](value, ...args);
        } else {
          throw new MatcherError(`matcher ${String(name)} is not supported by exapt's mini-jest`);
        }
        if (ok === negate) throw new MatcherError((negate ? 'not: ' : '') + message);
      };
      return (...args) => {
        if (mode === 'resolves') {
          return Promise.resolve(actual).then(
            (value) => check(value, args, false),
            (error) => { throw new MatcherError(`expected a promise that resolves, it rejected with ${show(error)}`); });
        }
        if (mode === 'rejects') {
          return Promise.resolve(actual).then(
            (value) => { throw new MatcherError(`expected a promise that rejects, it resolved to ${show(value)}`); },
            (error) => check(error, args, true));
        }
        check(actual, args, false);
      };
    },
  });
}
globalThis.expect = (actual) => makeExpect(actual);

function fullName(node) {
  const names = [];
  for (let b = node.block; b && b !== root; b = b.parent) names.unshift(b.name);
  return [...names, node.name].join(' > ');
}

function hooks(block) {
  const chain = [];
  for (let b = block; b; b = b.parent) chain.unshift(...b.beforeEach);
  return chain;
}

async function runBlock(block, results) {
  for (const child of block.children) {
    if (child.fn === undefined) { await runBlock(child, results); continue; }
    const name = fullName(child);
    try {
      for (const hook of hooks(child.block)) await hook();
      await Promise.race([
        Promise.resolve().then(() => child.fn()),
        new Promise((_, reject) => setTimeout(() => reject(new Error('test timed out after 5 s')), 5000)),
      ]);
      results.push([true, name]);
      console.log(`  \u2713 ${name}`);
    } catch (error) {
      results.push([false, name, error]);
      console.log(`  \u2715 ${name}`);
    }
  }
}

const files = process.argv.slice(2);
const results = [];
let loadFailed = false;
for (const file of files) {
  current = root;
  root.children = [];
  root.beforeEach = [];
  console.log(file);
  try {
    await import(pathToFileURL(file).href);
  } catch (error) {
    loadFailed = true;
    console.log(`  cannot load ${file}: ${String(error && error.stack || error)}`);
    continue;
  }
  await runBlock(root, results);
}
// Failures last, with their messages: the end of the log is what feedback keeps.
function where(error) {
  const frames = String(error && error.stack || '').split('\n').filter((l) => l.includes('/workspace/') && !l.includes('/.exapt/'));
  return frames.length ? '\n        ' + frames[0].trim() : '';
}
const failures = results.filter(([ok]) => !ok);
if (failures.length) console.log('\nFailures:');
for (const [, name, error] of failures) {
  const message = error instanceof Error ? `${error instanceof MatcherError ? '' : error.name + ': '}${error.message}` : show(error);
  console.log(`  \u2715 ${name}\n      ${message.split('\n').slice(0, 6).join('\n      ')}${where(error)}`);
}
const failed = failures.length;
console.log(`\nTests: ${failed} failed, ${results.length - failed} passed, ${results.length} total`);
process.exit(failed || loadFailed || results.length === 0 ? 1 : 0);
"""

#: path (under the workspace) -> source, copied into the scoring sandbox.
FILES: dict[str, str] = {
    f"{FOLDER}/register.mjs": REGISTER,
    f"{FOLDER}/hooks.mjs": HOOKS,
    f"{FOLDER}/minijest.mjs": RUNNER,
}


def command(test_files: list[str]) -> str:
    """The shell command that runs ``test_files`` (workspace paths) with the mini runner."""
    quoted = " ".join(f"'{path}'" for path in sorted(test_files))
    return (
        "node --disable-warning=MODULE_TYPELESS_PACKAGE_JSON "
        f"--import ./{FOLDER}/register.mjs {FOLDER}/minijest.mjs {quoted} 2>&1"
    )
