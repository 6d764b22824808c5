#!/usr/bin/env python3
"""Writes conformance/UPSTREAM.md from the ginkgo JSON reports of an upstream e2e.test run:
passed, failed and skipped by area ([sig-xxx]), the date, commit and machine, and each failure
with its first line and, where known-failures.tsv names it, why.
usage: report.py OUT.md RUNINFO.json REPORT.json [LATER-REPORT.json ...]
A later report's result for a spec replaces an earlier one's (the serial pass after the
parallel one). Also writes passed.txt and failed.txt beside the first report."""
import collections, json, os, re, sys

def specs(path):
    for suite in json.load(open(path)):
        for s in suite.get('SpecReports') or []:
            if s.get('LeafNodeType') != 'It':
                continue
            name = ' '.join((s.get('ContainerHierarchyTexts') or []) + [s['LeafNodeText']])
            message = ((s.get('Failure') or {}).get('Message') or '').strip().split('\n')[0][:300]
            yield name, s.get('State'), message

out, runinfo, reports = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3:]
state, why = {}, {}
for path in reports:
    if not os.path.exists(path):
        continue
    for name, st, message in specs(path):
        if st == 'skipped' and (name in state or not message):
            continue  # filtered out by focus or skip (no reason given), or run again later
        state[name], why[name] = st, message

known = []  # (regex over the spec name, why)
tsv = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'known-failures.tsv')
if os.path.exists(tsv):
    for line in open(tsv):
        if line.strip() and not line.startswith('#'):
            pattern, reason = line.rstrip('\n').split('\t', 1)
            known.append((re.compile(pattern), reason))

def failed(st):
    return st not in ('passed', 'skipped', 'pending')

def nodes_line(agents):
    if not agents:
        return "1, skiff up's own"
    return (f"{agents + 1}: skiff up's own and {agents} `skiff agent`{'s' if agents > 1 else ''} "
            "in a network namespace of its own, on one switch with skiff up's (AGENTS in run.sh)")

area = lambda n: (re.search(r'\[sig-[a-z-]+\]', n) or [''])[0] or '[other]'
table = collections.defaultdict(collections.Counter)
for n, st in state.items():
    table[area(n)]['failed' if failed(st) else st] += 1
total = collections.Counter('failed' if failed(st) else st for st in state.values())

lines = [
    '# Upstream conformance: e2e.test v1.37.2 against skiff up',
    '',
    'Written by `make upstream-conformance` (conformance/upstream/run.sh); do not edit by hand:',
    'the reasons of known failures live in `conformance/upstream/known-failures.tsv`.',
    '',
    f"- **Run:** {runinfo['date']}, skiff `{runinfo['commit']}`, {runinfo['minutes']} minutes",
    f"- **Machine:** {runinfo['machine']}",
    f"- **Nodes:** {nodes_line(runinfo.get('agents', 0))}",
    f"- **Specs:** every `[Conformance]` spec but `[Disruptive]` ones: the parallel ones with "
    f"{runinfo['nodes']} processes, then the `[Serial]` ones with one",
    f"- **Total:** {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped",
    '',
    '| area | passed | failed | skipped |',
    '| --- | ---: | ---: | ---: |',
]
for a in sorted(table):
    c = table[a]
    lines.append(f"| {a} | {c['passed']} | {c['failed']} | {c['skipped']} |")
lines.append(f"| **total** | **{total['passed']}** | **{total['failed']}** | **{total['skipped']}** |")
lines += ['', '## Failures', '']
failures = sorted(n for n, st in state.items() if failed(st))
if not failures:
    lines.append('None.')
for n in failures:
    reason = next((r for p, r in known if p.search(n)), 'not yet investigated')
    first = why[n].replace('|', '\\|').replace('\n', ' ')
    lines.append(f"- {n}\n  - {state[n]}: `{first}`\n  - why: {reason}")
skipped = sorted(n for n, st in state.items() if st == 'skipped')
if skipped:
    lines += ['', '## Skipped by the suite itself', '']
    for n in skipped:
        lines.append(f"- {n}: {why[n]}")
open(out, 'w').write('\n'.join(lines) + '\n')

folder = os.path.dirname(os.path.abspath(reports[0]))
with open(os.path.join(folder, 'passed.txt'), 'w') as f:
    f.writelines(n + '\n' for n, st in sorted(state.items()) if st == 'passed')
with open(os.path.join(folder, 'failed.txt'), 'w') as f:
    f.writelines(f'{n}\n    {state[n]}: {why[n]}\n' for n in failures)
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped; {out}")
