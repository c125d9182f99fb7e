#!/usr/bin/env bash
# Instructions per `tools/call` for each subject of benches/rmcp_server.rs, counted by valgrind's
# callgrind: repeatable whatever else the machine does, where the criterion medians of a
# 2.5-3.5 us request move by hundreds of ns from run to run. Steady state: the difference between
# a 1 s and a 3 s profile run, so that one-time costs (clock calibration, first allocations)
# cancel out.
#
#   cargo bench --bench rmcp_server --no-run && bash benches/rmcp_instructions.sh
#
# Needs valgrind and python3. Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RB=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/rmcp_server-* | grep -v '\.d$' | head -1)
count() {
  valgrind --tool=callgrind --callgrind-out-file="$OUT"/cg.$1.$2 $RB --profile $1 $2 > /dev/null 2>&1
  python3 - "$OUT/cg.$1.$2" <<'PY'
import sys,re
data=open(sys.argv[1]).read().split('\n')
names={}
for line in data:
    m=re.match(r'^(?:c?fn)=\((\d+)\)(?: (.*))?$', line)
    if m and m.group(2): names[m.group(1)]=m.group(2)
ids={i for i,n in names.items() if re.search(r'rmcp_server::call\b', n)}
calls=incl=0; cur=None
for i,line in enumerate(data):
    m=re.match(r'^cfn=\((\d+)\)', line)
    if m: cur=m.group(1); continue
    if line.startswith('calls=') and cur in ids:
        calls+=int(line.split('=')[1].split()[0]); incl+=int(data[i+1].split()[1]); cur=None
print(calls, incl)
PY
}
for sub in baseline mcp_tool wrapper wrapper_and_mcp_tool; do
  read c1 i1 < <(count $sub 1)
  read c2 i2 < <(count $sub 3)
  echo "$sub $(( (i2 - i1) / (c2 - c1) )) instructions per call ($c1 and $c2 calls)"
done
