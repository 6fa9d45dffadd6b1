#!/usr/bin/python3
"""The same N examples for Assay and for promptfoo. See bench/README.md ("Evals: Assay vs
promptfoo").

  make_dataset.py --out DIR --port PORT [--n 1000] [--seed 1] [--concurrency 8]

Writes into DIR:
  qa.jsonl             Assay's dataset: {"id", "input", "assert": [...]} per line
  promptfooconfig.yaml promptfoo's config: one prompt "{{question}}", the OpenAI provider at
                       http://127.0.0.1:PORT/v1, and one test per example with the SAME
                       assertions (description = the example's id)

Example i asks "What is A+B? Reply <how>." (A, B drawn from random.Random(seed)), <how> one of
four shapes in turn; each shape has its own assertions, together every type both tools know:
equals, contains, icontains, regex, starts-with, is-json, and not-equals, not-contains,
not-icontains, not-regex, not-starts-with, not-is-json. model_server.py answers each shape
(and gets a fixed tenth wrong, in ways that fail some assertions of a test and pass others).
"""
import argparse
import json
import os
import random
import sys

HOW = ['with the number only', 'with a sentence', 'in JSON', 'in capitals']


def asserts(kind, s):
    if kind == 0:  # "S"; wrong: "S+1"
        return [{'type': 'equals', 'value': str(s)},
                {'type': 'regex', 'value': '^\\d+$'},
                {'type': 'is-json'},                      # a bare number is JSON
                {'type': 'not-equals', 'value': str(s + 1)}]
    if kind == 1:  # "The answer is S."; wrong: "I think it is S+1."
        return [{'type': 'starts-with', 'value': 'The answer is'},
                {'type': 'contains', 'value': '%d.' % s},
                {'type': 'icontains', 'value': 'ANSWER'},
                {'type': 'not-is-json'},
                {'type': 'not-regex', 'value': '\\?$'}]
    if kind == 2:  # '{"answer": S}'; wrong: '{"answer": S' (contains passes, is-json fails)
        return [{'type': 'is-json'},
                {'type': 'contains', 'value': '"answer": %d' % s},
                {'type': 'not-starts-with', 'value': '```'}]
    # "THE SUM IS S"; wrong: "the sum is S" (icontains passes; regex, not-contains fail)
    return [{'type': 'icontains', 'value': 'the sum is %d' % s},
            {'type': 'regex', 'value': '^THE SUM IS \\d+$'},
            {'type': 'not-contains', 'value': 'the'},
            {'type': 'not-icontains', 'value': 'error'}]


def examples(n, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rnd.randrange(1000), rnd.randrange(1000)
        kind = i % 4
        out.append({'id': 'q%04d' % i, 'input': 'What is %d+%d? Reply %s.' % (a, b, HOW[kind]),
                    'assert': asserts(kind, a + b)})
    return out


def write(out, port, n, seed, concurrency):
    os.makedirs(out, exist_ok=True)
    ex = examples(n, seed)
    with open(os.path.join(out, 'qa.jsonl'), 'w') as f:
        for e in ex:
            f.write(json.dumps(e) + '\n')
    # JSON is YAML: one test per line keeps the 1,000 tests readable and exact.
    provider = {'id': 'openai:chat:bench', 'label': 'bench',
                'config': {'apiBaseUrl': 'http://127.0.0.1:%d/v1' % port, 'apiKey': 'x'}}
    with open(os.path.join(out, 'promptfooconfig.yaml'), 'w') as f:
        f.write('# written by bench/evals/make_dataset.py --n %d --seed %d\n' % (n, seed))
        f.write('description: assay-bench-evals\n')
        f.write('prompts:\n  - "{{question}}"\n')
        f.write('providers:\n  - %s\n' % json.dumps(provider))
        f.write('evaluateOptions:\n  maxConcurrency: %d\n  cache: false\n' % concurrency)
        f.write('tests:\n')
        for e in ex:
            f.write('  - %s\n' % json.dumps({'description': e['id'],
                                             'vars': {'question': e['input']},
                                             'assert': e['assert']}))
    return ex


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--n', type=int, default=1000)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--concurrency', type=int, default=8)
    a = ap.parse_args()
    write(a.out, a.port, a.n, a.seed, a.concurrency)
    return 0


if __name__ == '__main__':
    sys.exit(main())
