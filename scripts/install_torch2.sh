#!/usr/bin/env bash
# Installs the PyTorch 2.x CPU wheel of the machine image into a folder of its own, for the
# benchmark peers (src/bench/peers.ts runs /usr/bin/python3 with PYTHONPATH=that folder).
# Debian's python3-torch (1.13) stays installed and stays the goldens' and the 1.13 row's torch.
#
#   scripts/install_torch2.sh [--force] [--no-check]
#
# Environment: TESSERA_TORCH2_PATH  target folder (default /opt/torch2; the benchmarks read the
#                                   same variable), TORCH2_WHEEL  the wheel file (default: the
#                                   newest torch-2.*-cp<python>-*.whl in the folder that
#                                   `python3 -m pip download` with no argument names).
# Idempotent: does nothing but the check when the folder already imports a torch 2.x.
# For developers and benchmark runs only: tests and CI never need or run it.
set -euo pipefail

PY=/usr/bin/python3
TARGET=${TESSERA_TORCH2_PATH:-/opt/torch2}
FORCE=0
CHECK=1
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    --no-check) CHECK=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done

say() { echo "install_torch2: $*" >&2; }

# 1. Debian packages torch imports (filelock for torch.compile's caches, networkx, jinja2, fsspec,
#    mpmath), and a C++ compiler plus Python's headers for inductor's generated CPU kernels.
DEBS=(python3-pip python3-filelock python3-networkx python3-jinja2 python3-fsspec python3-mpmath
      python3-sympy python3-typing-extensions python3-numpy python3-onnx python3-dev g++)
missing=()
for p in "${DEBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

installed() {
  PYTHONPATH="$TARGET" "$PY" -c 'import torch, sys; sys.exit(0 if int(torch.__version__.split(".")[0]) >= 2 else 1)' >/dev/null 2>&1
}

if ((FORCE)) || ! installed; then
  # 2. The wheel: `pip download` with no requirement answers with the folder it would look in.
  WHEEL=${TORCH2_WHEEL:-}
  if [[ -z "$WHEEL" ]]; then
    tag=cp$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
    dirs=$("$PY" -m pip download 2>&1 | grep -o 'pip download [^"]*' | sed 's/^pip download //' || true)
    dirs="$dirs ${PIP_FIND_LINKS:-} $("$PY" -m pip config get global.find-links 2>/dev/null || true)"
    for d in $dirs; do
      d=${d#file://}
      [[ -d "$d" ]] || continue
      WHEEL=$(ls -1 "$d"/torch-2.*-"$tag"-"$tag"-*linux*x86_64.whl 2>/dev/null | sort -V | tail -1 || true)
      [[ -n "$WHEEL" ]] && break
    done
  fi
  if [[ -z "$WHEEL" || ! -f "$WHEEL" ]]; then
    say "no PyTorch 2.x wheel for $("$PY" --version) found (set TORCH2_WHEEL to one)"
    exit 1
  fi
  say "installing $(basename "$WHEEL") into $TARGET"
  mkdir -p "$TARGET"
  # --no-deps: the dependencies come from Debian (step 1), except the two below
  "$PY" -m pip install -q --no-deps --upgrade --no-index --target "$TARGET" "$WHEEL"
  # 3. Debian 12's typing_extensions (4.4) lacks `deprecated`, which torch 2.x imports, and its
  #    sympy (1.11) is older than torch 2.x requires (>= 1.13.3): newer ones go into the same
  #    folder, so they shadow Debian's only for processes run with PYTHONPATH=$TARGET.
  #    Only the machine's local package folders are asked (pip's configured file:// indexes and
  #    find-links folders), never a remote index.
  src=(--no-index)
  for u in $("$PY" -m pip config get global.index-url 2>/dev/null || true) $("$PY" -m pip config get global.extra-index-url 2>/dev/null || true); do
    if [[ "$u" == file://* ]]; then
      if [[ "${src[0]}" == --no-index ]]; then src=(--index-url "$u"); else src+=(--extra-index-url "$u"); fi
    fi
  done
  for d in "$(dirname "$WHEEL")" ${PIP_FIND_LINKS:-} $("$PY" -m pip config get global.find-links 2>/dev/null || true); do
    d=${d#file://}
    [[ -d "$d" ]] && src+=(--find-links "$d")
  done
  "$PY" -m pip install -q --no-deps --upgrade --target "$TARGET" "${src[@]}" 'typing_extensions>=4.10' 'sympy>=1.13.3'
else
  say "$TARGET already imports torch $(PYTHONPATH="$TARGET" "$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
fi

# 4. Check: the version, torch.compile (forward and backward) on a tiny model, bf16 autocast.
if ((CHECK)); then
  PYTHONPATH="$TARGET" "$PY" - <<'EOF'
import torch
import torch.nn.functional as F
print("torch", torch.__version__, "from", torch.__file__)
assert hasattr(F, "scaled_dot_product_attention")
m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
x = torch.randn(8, 16)
c = torch.compile(m)
assert (c(x) - m(x)).abs().max().item() < 1e-4
c(x).sum().backward()
with torch.autocast("cpu", dtype=torch.bfloat16):
    assert m(x).dtype == torch.bfloat16
print("torch.compile (forward + backward) and bf16 autocast: ok")
EOF
fi
echo "$TARGET"
