#!/usr/bin/env bash
# The GPU check in one command: bench/gpu_check.sh OUTDIR [--quick] [--device cpu] [--steps a,b,...]
#
# 1. installs the wheels carried in .whl/ (bench/gpu_wheels.py downloads them) into a target folder and puts it on
#    PYTHONPATH, as docs/benchmarks.md ("GPU check") and the device tool's README describe;
# 2. runs bench/gpu_check.py: environment, VapourSynth shim, pytest -m cuda, speed against spandrel, CUDA runners,
#    the VapourSynth filter's fps, torch.compile; each step under its own time limit, going on past failures;
# 3. leaves OUTDIR/report.md, results.json, log.txt and junit.xml.
#
# Full: under 8 minutes on an H200; --quick: under 3; --device cpu: the dry run (the cuda tests' CPU parts).
# Exit status: 0 when every step of the mode passed; 1 when one failed, timed out, was incomplete (skipped tests,
# configurations not measured) or not available (VapourSynth, a C compiler, Triton's needs); 2 for a usage error.
set -u

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

outdir=""
args=()
quick=0
device=cuda
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --quick) quick=1; args+=("$1") ;;
        --device) [ $# -ge 2 ] || { echo "gpu_check.sh: --device needs a value (cuda or cpu)" >&2; exit 2; }
                  device="$2"; args+=("$1" "$2"); shift ;;
        --device=*) device="${1#--device=}"; args+=("$1") ;;
        --steps) [ $# -ge 2 ] || { echo "gpu_check.sh: --steps needs a value" >&2; exit 2; }
                 args+=("$1" "$2"); shift ;;
        -*) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) if [ -n "$outdir" ]; then echo "gpu_check.sh: one OUTDIR only, got '$outdir' and '$1'" >&2; exit 2; fi
           outdir="$1" ;;
    esac
    shift
done
if [ -z "$outdir" ]; then
    echo "gpu_check.sh: give the folder for the results: bench/gpu_check.sh OUTDIR [--quick] [--device cpu]" >&2
    exit 2
fi
case "$device" in
    cpu|cuda|cuda:[0-9]*) ;;
    *) echo "gpu_check.sh: --device must be cuda, cuda:N or cpu, not '$device'" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$outdir" || { echo "gpu_check.sh: cannot create $outdir" >&2; exit 2; }
outdir="$(cd "$outdir" && pwd)"
cd "$repo" || exit 2
: > "$outdir/log.txt"

python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python="$repo/.venv/bin/python"; else python="$(command -v python3)"; fi
fi

install="none carried"
shopt -s nullglob
wheels=(.whl/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    site="${HAT_CHECK_SITE:-/tmp/hat-check-site}"
    echo "== installing ${#wheels[@]} wheels into $site" | tee -a "$outdir/log.txt"
    if "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "${wheels[@]}" >>"$outdir/log.txt" 2>&1; then
        install="installed ${#wheels[@]} into $site: $(cd .whl && echo *.whl)"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        export PATH="$site/bin:$PATH"
    else
        install="pip install of .whl/ FAILED (see log.txt); running without them"
    fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [ "$device" = cpu ]; then total=570; elif [ $quick = 1 ]; then total=175; else total=470; fi
timeout --kill-after=15 "$total" "$python" -m bench.gpu_check "$outdir" "${args[@]}" \
    --install "$install" --command "bench/gpu_check.sh $outdir ${args[*]}"
status=$?
if [ $status = 124 ] || [ $status = 137 ]; then
    echo "gpu_check.sh: the check ran past its $total s and was stopped; $outdir has what it had written" >&2
    exit 1
fi
exit $status
