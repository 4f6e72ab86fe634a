#!/usr/bin/env bash
# The portable build's promise, checked on its machine code: AVX-512 (EVEX-encoded) instructions
# appear only in the isa_avx512 kernel variants (kernels/cpu/isa_passes.h), never in code an AVX2
# CPU runs; and the start-up check (isa.cpp.o) uses no AVX at all (no VEX either), so it can report
# a missing feature instead of faulting.
#   check_isa_objects.sh libtuneserve.a
set -euo pipefail
archive="$1"
objdump -d --insn-width=16 "$archive" | awk -F'\t' '
  /^[^ \t].*:[ \t]+file format/ { object = $0; sub(/:.*/, "", object); next }
  /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
  NF >= 3 {
    n = split($2, bytes, " ")
    i = 1
    while (i <= n && bytes[i] ~ /^(26|2e|36|3e|64|65|66|67|f0|f2|f3)$/) i++
    op = bytes[i]
    if (op == "62" && fn !~ /isa_avx512/) { bad++; if (bad <= 20) print object ": " fn ": AVX-512 outside isa_avx512: " $3 }
    if (object == "isa.cpp.o" && (op == "62" || op == "c4" || op == "c5")) { bad++; if (bad <= 20) print object ": " fn ": AVX in the start-up check: " $3 }
    if (fn ~ /isa_avx512/ && op == "62") evex++
    checked++
  }
  END {
    if (checked == 0) { print "no instructions found in the archive"; exit 1 }
    if (evex == 0) { print "no AVX-512 variant found: are the kernels compiled per level?"; exit 1 }
    if (bad) { print bad " instruction(s) an AVX2 CPU could run into"; exit 1 }
    print checked " instructions checked; AVX-512 only in isa_avx512 (" evex " instructions)"
  }'
