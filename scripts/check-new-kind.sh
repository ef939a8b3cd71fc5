#!/usr/bin/env bash
# A seventh plug-in kind, added to a throwaway copy of this workspace exactly as docs/add-a-kind.md
# says: `curriculum` (which classes take part in an outer iteration's match), default `all`. Edited:
# its line in core's list (with its trait module), its registration in crates/plugins, and the two
# wiring lines every new plug-in crate needs; nothing else. Then:
#   - `gradmatch plugins` lists the kind and its plug-ins; `condense --help` has `--curriculum`;
#   - an experiment file takes `[curriculum]`, and a misspelt plug-in is refused at its line with
#     the closest name;
#   - every cell of the shipped grids keeps its id (the key of its results): a kind at its default
#     is left out of the provenance, so adding one re-runs nothing.
# Usage: bash scripts/check-new-kind.sh   (a release build of the copy: ~10 minutes on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Its own target folder: the copy's crates have the real ones' names, and their builds must not pass
# for the real ones' (nor replace the real binary).
export CARGO_TARGET_DIR="${KIND_CHECK_TARGET:-$root/target/new-kind-check-target}"
work="$root/target/new-kind-check"
data="$root/data"
original="$root/target/release/gradmatch"

echo "== the workspace's own binary, for the ids before the kind"
(cd "$root" && CARGO_TARGET_DIR="$root/target" cargo build -q --release -p gradmatch-runner)

echo "== copying the workspace (tracked files) to $work"
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
(cd "$root" && git ls-files -z | xargs -0 cp --parents --preserve=timestamps -t "$work")
ln -s "$data" "$work/data"
cd "$work"

echo "== 1. the kind's trait, in core (a new file), and its line in core's list"
cat > crates/core/src/curriculum.rs <<'EOF'
/// Which classes take part in an outer iteration's match.
pub trait Curriculum: Send + Sync {
    fn classes(&self, iteration: usize, classes: usize) -> Vec<usize>;
}
EOF
sed -i 's|^mod step;|&\nmod curriculum;\npub use curriculum::Curriculum;|' crates/core/src/lib.rs
sed -i 's|^    sampler: dyn Sampler = .*|&\n    /// Which classes take part in an outer iteration'"'"'s match.\n    curriculum: dyn Curriculum = "all", "curriculum", "curricula";|' crates/core/src/lib.rs

echo "== 2. its plug-ins: a crate of their own"
mkdir -p crates/curricula/src
cat > crates/curricula/Cargo.toml <<'EOF'
[package]
name = "gradmatch-curricula"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true

[dependencies]
gradmatch-core.workspace = true
EOF
cat > crates/curricula/src/lib.rs <<'EOF'
use gradmatch_core::{plugin_without_options, Curriculum};

/// Every class, every iteration (DC).
#[derive(Debug, Default, Clone, Copy)]
pub struct All;

impl Curriculum for All {
    fn classes(&self, _: usize, classes: usize) -> Vec<usize> {
        (0..classes).collect()
    }
}
plugin_without_options!(All, "all", "every class, every iteration (DC)");

/// One class per iteration, in turn.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cycle;

impl Curriculum for Cycle {
    fn classes(&self, iteration: usize, classes: usize) -> Vec<usize> {
        vec![iteration % classes]
    }
}
plugin_without_options!(Cycle, "cycle", "one class per iteration, in turn");
EOF

echo "== 3. the crate's wiring (as for any plug-in crate) and its registrations, in crates/plugins"
sed -i 's|^    "crates/selections",|&\n    "crates/curricula",|' Cargo.toml
sed -i 's|^# The built-in plug-ins.*|&\ngradmatch-curricula = { path = "../curricula" }|' crates/plugins/Cargo.toml
sed -i 's|^\( *\)p.method.sampler.register::<gradmatch_samplers::Dream>();|&\n\1p.method.curriculum.register::<gradmatch_curricula::All>();\n\1p.method.curriculum.register::<gradmatch_curricula::Cycle>();|' crates/plugins/src/lib.rs

echo "== what changed"
changed=$(cd "$work" && for f in $(cd "$root" && git ls-files); do cmp -s "$root/$f" "$f" || echo "$f"; done)
echo "edited: $changed" | tr '\n' ' '; echo
echo "new: crates/core/src/curriculum.rs crates/curricula/"
expected=$'Cargo.toml\ncrates/core/src/lib.rs\ncrates/plugins/Cargo.toml\ncrates/plugins/src/lib.rs'
[ "$changed" = "$expected" ] || { echo "FAIL: the kind edited other files than its list line, its wiring and its registrations"; exit 1; }

covered() { # what, pattern, output
    grep -q -- "$2" <<<"$3" || { echo "FAIL: $1 does not show \`$2\`"; echo "$3" | tail -30; exit 1; }
    echo "ok: $1 shows \`$2\`"
}

echo "== build (release)"
cargo build -q --release -p gradmatch-runner
kind="$CARGO_TARGET_DIR/release/gradmatch"
covered "gradmatch plugins" "curricula" "$("$kind" plugins)"
covered "gradmatch plugins" "cycle" "$("$kind" plugins)"
covered "condense --help" "--curriculum" "$("$kind" condense --help)"

echo "== the experiment file takes the kind; a misspelt plug-in is refused at its line"
printf 'name = "k"\n[base]\ndataset = "mnist"\n[[axis]]\nname = "c"\nvariants = [{ label = "x", set = { curriculum.name = "cycel" } }]\n' > "$work/bad.toml"
if out=$("$kind" --quiet ablate "$work/bad.toml" --check 2>&1); then
    echo "FAIL: a misspelt curriculum was accepted"; exit 1
fi
covered "the refusal of a misspelt curriculum" "did you mean \`cycle\`" "$out"
covered "the refusal of a misspelt curriculum" "line 6" "$out"
printf 'name = "k"\n[base]\ndataset = "mnist"\n[[axis]]\nname = "c"\nvariants = [{ label = "all", set = {} }, { label = "cycle", set = { curriculum.name = "cycle" } }]\n' > "$work/kinds.toml"
ids=$("$kind" --quiet ablate "$work/kinds.toml" --check)
id() { grep -E "^  $1 " <<<"$ids" | grep -oE '\b[0-9a-f]{16}\b' | head -1; }
all=$(id c=all); cycle=$(id c=cycle)
[ -n "$all" ] && [ -n "$cycle" ] && [ "$all" != "$cycle" ] || { echo "FAIL: the curriculum is not in the key: $ids"; exit 1; }
echo "ok: a cell with another curriculum has its own id ($cycle, beside $all)"

echo "== every shipped grid's cells keep their ids"
for grid in "$root"/ablations/*.toml; do
    before=$("$original" --quiet ablate "$grid" --check | grep '^  ' | grep -oE '\b[0-9a-f]{16}\b')
    after=$("$kind" --quiet ablate "$grid" --check | grep '^  ' | grep -oE '\b[0-9a-f]{16}\b')
    [ -n "$before" ] && [ "$before" = "$after" ] || { echo "FAIL: $(basename "$grid"): ids changed"; diff <(echo "$before") <(echo "$after"); exit 1; }
    echo "ok: $(basename "$grid"): $(wc -l <<<"$before") cells, the same ids"
done
echo "new-kind check passed"
