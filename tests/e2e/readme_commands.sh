#!/usr/bin/env bash
# The README's first commands work as written in a root shell (issue 17):
#   1. its two commands are exactly `scripts/demo.sh` and `scripts/test.sh`: no sudo, which a minimal
#      Debian lacks; and .ci/run runs exactly that test command;
#   2. no script those commands run calls sudo (static check of the command positions);
#   3. the demo, run as written from the top directory with a `sudo` first on PATH that records any call
#      and fails as a missing one would, passes and removes its lab;
#   4. the test command cannot run inside the suite it runs: it runs as written with recording stand-ins
#      for cmake and ctest first on PATH (install-deps.sh runs for real), which shows what it runs, in order;
#   5. the install step the README gives (`cmake --install build`, with --prefix into a temporary
#      directory here) gives an `xdp-pipeline --version` that answers as the README shows.
# Usage (root): readme_commands.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$(readlink -f "${1:?usage: $0 SOURCE_DIR BUILD_DIR}")
BUILD=$(readlink -f "${2:?usage: $0 SOURCE_DIR BUILD_DIR}")
# shellcheck source=scripts/lib/harness.sh
source "$SRC/scripts/lib/harness.sh" # a failed check ends the test
[[ $(id -u) -eq 0 ]] || skip "needs root: the README's commands are for a root shell (the demo makes namespaces, attaches XDP)"
T=$(mktemp -d /tmp/xdpp-readme.XXXXXX)
trap 'rm -rf "$T"' EXIT

# --- 1. the commands, as the README writes them ------------------------------------------------------
# The indented lines of the section "Two commands": the demo, the test suite, then the install step.
mapfile -t code < <(awk '/^## Two commands/ { on = 1; next } /^## / { on = 0 }
                         on && /^    [^ ]/ { sub(/^    /, ""); sub(/[ ]+#.*$/, ""); print }' "$SRC/README.md")
((${#code[@]} >= 4)) || fail "the README's 'Two commands' section has ${#code[@]} command lines: ${code[*]}"
DEMO=${code[0]} TESTS=${code[1]} INSTALL=${code[2]} VERSION=${code[3]}
[[ $DEMO == "scripts/demo.sh" ]] || fail "the README's demo command is '$DEMO', not 'scripts/demo.sh'"
[[ $TESTS == "scripts/test.sh" ]] || fail "the README's test command is '$TESTS', not 'scripts/test.sh'"
[[ $INSTALL == "cmake --install build" ]] || fail "the README's install command is '$INSTALL'"
[[ $VERSION == "xdp-pipeline --version" ]] || fail "the README's version command is '$VERSION'"
grep -qx "exec bash $TESTS" "$SRC/.ci/run" || fail ".ci/run does not run the README's test command '$TESTS': $(cat "$SRC/.ci/run")"
pass "README: '$DEMO' and '$TESTS' without sudo; .ci/run runs '$TESTS'"

# --- 2. nothing they run calls sudo ------------------------------------------------------------------
# sudo in a command position: at the start of a line or after ; & | ( or $( ; comments are skipped.
for script in scripts/demo.sh scripts/test.sh scripts/install-deps.sh scripts/lab.sh scripts/lib/harness.sh .ci/run; do
  if grep -nE '^[^#]*(^|[;&|(]|\$\()[[:space:]]*sudo[[:space:]]' "$SRC/$script" | grep -v '^[0-9]*:[[:space:]]*#'; then
    fail "$script runs sudo (above)"
  fi
done
pass "scripts/{demo,test,install-deps,lab,lib/harness}.sh and .ci/run run no sudo"

# A sudo that records its call and fails like a missing one, first on PATH.
mkdir -p "$T/shim"
cat >"$T/shim/sudo" <<EOF
#!/bin/sh
echo "sudo \$*" >>"$T/sudo-calls"
echo "sudo: command not found" >&2
exit 127
EOF
chmod 0755 "$T/shim/sudo"

# --- 3. the demo, as written -------------------------------------------------------------------------
# BUILD_DIR: the build under test (the README's default, build/, is the same directory in a checkout
# built by scripts/test.sh), so that the demo's `cmake --build` finds it up to date.
rc=0
(cd "$SRC" && PATH="$T/shim:$PATH" BUILD_DIR="$BUILD" timeout 600 $DEMO) >"$T/demo.log" 2>&1 || rc=$?
((rc == 0)) || fail "'$DEMO' exited $rc:
$(tail -n 40 "$T/demo.log")"
[[ ! -s $T/sudo-calls ]] || fail "'$DEMO' called sudo: $(cat "$T/sudo-calls")"
grep -q "XDP programs of lab .* are gone" "$T/demo.log" || fail "the demo did not say that its lab is gone"
grep -q "The executable is $BUILD/bin/xdp-pipeline" "$T/demo.log" || fail "the demo does not say where the executable is"
pass "'$DEMO' as written: passed ($(grep -c '✔' "$T/demo.log") facts shown), no sudo, lab removed"

# --- 4. the test command, dry-run --------------------------------------------------------------------
for tool in cmake ctest; do
  cat >"$T/shim/$tool" <<EOF
#!/bin/sh
echo "$tool \$* (in \$(pwd))" >>"$T/steps"
EOF
  chmod 0755 "$T/shim/$tool"
done
rc=0
(cd "$SRC" && PATH="$T/shim:$PATH" timeout 300 $TESTS "$BUILD") >"$T/tests.log" 2>&1 || rc=$?
((rc == 0)) || fail "'$TESTS' (dry run) exited $rc: $(cat "$T/tests.log")"
[[ ! -s $T/sudo-calls ]] || fail "'$TESTS' called sudo: $(cat "$T/sudo-calls")"
expected="cmake -S $SRC -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo (in $SRC)
cmake --build $BUILD -j $(nproc) (in $SRC)
ctest --output-on-failure --timeout 600 (in $BUILD)"
[[ $(cat "$T/steps") == "$expected" ]] || fail "'$TESTS' ran:
$(cat "$T/steps")
expected:
$expected"
grep -q "the executable is $BUILD/bin/xdp-pipeline" "$T/tests.log" || fail "'$TESTS' does not say where the executable is"
pass "'$TESTS' as written (cmake and ctest recorded): install-deps, configure, build, ctest; no sudo"

# --- 5. the install step and --version ---------------------------------------------------------------
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
out=$(PATH="$T/prefix/bin:$PATH" $VERSION)
[[ $out =~ ^xdp-pipeline\ [0-9]+\.[0-9]+\.[0-9]+\ \(plugin\ ABI\ [0-9]+,\ BPF\ contract\ [0-9]+\)$ ]] ||
  fail "'$VERSION' after '$INSTALL --prefix $T/prefix' printed '$out'"
PATH="$T/prefix/bin:$PATH" xdp-pipeline check "$SRC/configs/full.toml" >/dev/null ||
  fail "the installed xdp-pipeline does not find its built-in stages"
pass "'$INSTALL' (--prefix $T/prefix) then '$VERSION': $out"
echo PASS
