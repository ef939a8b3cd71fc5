#!/usr/bin/env bash
# A researcher's seventh distance, added to a throwaway copy of this workspace exactly as
# docs/write-a-distance.md says: its crate, its dependency line and ONE registration line in
# crates/plugins. Nothing else is edited, and every check must cover it:
#   `gradmatch plugins`, the plug-in kit's laws and gradient check (crates/plugins/tests),
#   the second-order reference test of the engine, `device-check`, and the distance bench.
# Then the same distance with a broken gradient must fail the kit's check.
# Usage: bash scripts/check-new-plugin.sh   (CI runs it after the test suite; a few minutes)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The target folder is shared: dependencies are built once. The copy's crates have the same names and
# workspace paths as the real ones, so cargo files their builds under the same names: the copy is
# removed when the check ends, so that cargo sees those builds' sources gone and rebuilds the real
# crates from their own sources next time (a kept copy would pass its builds off as fresh).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
work="$CARGO_TARGET_DIR/new-plugin-check"
data="$root/data"

echo "== copying the workspace (tracked files) to $work"
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
(cd "$root" && git ls-files -z | xargs -0 cp --parents --preserve=timestamps -t "$work")
ln -s "$data" "$work/data"
cd "$work"

echo "== 1. the crate: crates/distances/chebyshev"
mkdir -p crates/distances/chebyshev/src
cat > crates/distances/chebyshev/Cargo.toml <<'EOF'
[package]
name = "gradmatch-distance-chebyshev"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true

[dependencies]
gradmatch-core.workspace = true

[dev-dependencies]
gradmatch-testkit.workspace = true
EOF
cat > crates/distances/chebyshev/src/lib.rs <<'EOF'
use gradmatch_core::{sum_over_tensors, Distance, NoOptions, OptionError, Plugin, Result, Tensor};

/// Sum over rows of max_j |real_j - syn_j|.
#[derive(Debug, Default, Clone, Copy)]
pub struct Chebyshev;

impl Distance for Chebyshev {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        sum_over_tensors(real, syn, |a, b| (a - b)?.abs()?.max(1)?.sum_all())
    }
}

impl Plugin for Chebyshev {
    const NAME: &'static str = "chebyshev";
    const SUMMARY: &'static str = "sum over rows of max |real - syn|";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(Chebyshev)
    }
}

#[cfg(test)]
mod tests {
    use gradmatch_testkit::{check_distance_laws, DistanceLaws};

    #[test]
    fn laws() {
        let laws = DistanceLaws { symmetric: true, triangle: true, skips_vectors: true, ..DistanceLaws::UNIVERSAL };
        check_distance_laws(&super::Chebyshev, &laws);
    }
}
EOF

echo "== 2. its dependency line and 3. its registration line, in crates/plugins"
sed -i 's|^# The built-in plug-ins.*|&\ngradmatch-distance-chebyshev = { path = "../distances/chebyshev" }|' crates/plugins/Cargo.toml
sed -i 's|^\( *\)p.method.distance.register::<gradmatch_distance_manhattan::Manhattan>();|&\n\1p.method.distance.register::<gradmatch_distance_chebyshev::Chebyshev>();|' crates/plugins/src/lib.rs
git -C "$root" diff --no-index --stat "$root/crates/plugins" "$work/crates/plugins" || true

covered() { # what, output: fails unless the output names chebyshev
    grep -q chebyshev <<<"$2" || { echo "FAIL: $1 does not cover the new distance"; echo "$2" | tail -30; exit 1; }
    echo "ok: $1 covers it"
}

echo "== checks"
cargo test -q -p gradmatch-distance-chebyshev --lib 2>&1 | grep "test result"
covered "gradmatch plugins" "$(cargo run -q -p gradmatch-runner -- plugins)"
covered "the plug-in kit over the registry" "$(cargo test -q -p gradmatch-plugins --test every_plugin -- --nocapture 2>&1)"
covered "the engine's second-order reference test" "$(cargo test -q -p gradmatch-engine --test matching_gradient -- --nocapture 2>&1)"
cargo run -q -p gradmatch-runner -- --quiet --device cpu --data-dir "$data" device-check \
    --model ConvNetW4 --batch-real 8 --iterations 1 --json "$work/check.json" >/dev/null
covered "device-check" "$(cat "$work/check.json")"
# Criterion runs each benchmark once when started by `cargo test`.
covered "the distance bench" "$(cargo test -q -p gradmatch-plugins --bench distances 2>&1)"

echo "== a broken gradient (the synthetic side detached) must fail the kit"
sed -i 's#(a - b)?.abs()#(a - b.detach())?.abs()#' crates/distances/chebyshev/src/lib.rs
grep -q 'b.detach()' crates/distances/chebyshev/src/lib.rs
if cargo test -q -p gradmatch-plugins --test every_plugin >"$work/broken.log" 2>&1; then
    echo "FAIL: a distance with no gradient passed the checks"
    exit 1
fi
grep -m1 "finite differences\|law" "$work/broken.log" || true
echo "ok: the broken distance fails the checks"
echo "new-plugin check passed"
