"""The tables of the bounded GPU check (check.sh), in Markdown for results/gpu.md.
python3 summary.py DIR   (DIR holds steps.txt, gpu-usage.csv and what the steps wrote)."""
import json
import pathlib
import sys

# Seconds per outer iteration of the authors' PyTorch code on one H100 (../shared/REFERENCE.md).
H100 = {"dc-1": 0.144, "mda-1": 0.151, "dc-10": 3.45, "mda-10": 2.94}
# The quick start on the CPU with the same config and seeds (results/recipes.md, the reference's dc
# recipe): 88.98 +- 0.29 %.
QUICK_CPU = (88.98, 0.29)


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def usage(out):
    samples = []
    try:
        lines = (out / "gpu-usage.csv").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            t, mem, util = (float(x) for x in line.replace(" ", "").split(","))
            samples.append((t, mem, util))
        except ValueError:
            pass
    return samples


def steps_table(out):
    samples = usage(out)
    print("| step | exit code | seconds | peak GPU MiB | mean GPU util % |")
    print("|---|---|---|---|---|")
    try:
        lines = (out / "steps.txt").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, rc, t0, t1 = line.split()
        t0, t1 = float(t0), float(t1)
        window = [s for s in samples if t0 <= s[0] <= t1]
        peak = f"{max(m for _, m, _ in window):.0f}" if window else "-"
        util = f"{sum(u for *_, u in window) / len(window):.0f}" if window else "-"
        print(f"| {name} | {rc} | {t1 - t0:.0f} | {peak} | {util} |")


def bench_table(out):
    # `gradmatch bench --json` writes {"peak": ..., "rows": [...]} (a bare list before issue 32).
    rows = lambda data: data.get("rows", []) if isinstance(data, dict) else data or []
    fp32, tf32 = rows(load(out / "bench.json")), rows(load(out / "bench-tf32.json"))
    if not fp32 and not tf32:
        print("\nno bench table (see bench.log, bench-tf32.log)")
        return
    by_row = {r["row"]: r for r in tf32}
    print("\n| row | work | gradmatch s | H100 reference s | reference / ours | with TF32 s | reference / ours (TF32) |")
    print("|---|---|---|---|---|---|---|")
    for r in fp32 or tf32:
        name, ref = r["row"], H100.get(r["row"])
        ours = r["gradmatch"]["seconds"] if fp32 else None
        fast = by_row.get(name, {}).get("gradmatch", {}).get("seconds")
        cell = lambda s: f"{s:.3f}" if s else "-"
        ratio = lambda s: f"{ref / s:.2f}x" if ref and s else "-"
        print(f"| {name} | {r['work']} | {cell(ours)} | {cell(ref)} | {ratio(ours)} | {cell(fast)} | {ratio(fast)} |")


def agreement(out):
    report = load(out / "agree.json")
    if not report:
        print("\nno agreement report (see agree.log)")
        return
    rows = report["gradients"]
    worst = max(r["relative_error"] for r in rows)
    worst_tf32 = max(r["relative_error_tf32"] for r in rows)
    print(f"\nCUDA vs CPU, {len(rows)} level x distance rows: largest relative error of the matching gradient "
          f"{worst:.2e} (f32), {worst_tf32:.2e} (TF32); loss curve {report['loss_curve_relative_error']:.2e}; "
          f"tolerance {report['tolerance']:.0e}")


def quick(out):
    summary = load(out / "quick.json")
    if not summary:
        print("\nno quick-start result (see quick.log)")
        return
    for e in summary["evaluations"]:
        accs = ", ".join(f"{100 * a:.2f}" for a in e["accuracies"])
        print(f"\nquick start: {100 * e['mean']:.2f} +- {100 * e['std']:.2f} % ({accs}), "
              f"{summary['seconds_per_iteration']:.3f} s per outer iteration, {e['seconds_per_evaluation']:.1f} s per evaluation; "
              f"on the CPU: {QUICK_CPU[0]:.2f} +- {QUICK_CPU[1]:.2f} %")


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    for part in (steps_table, bench_table, agreement, quick):
        try:
            part(out)
        except Exception as e:  # one malformed file must not hide the other tables
            print(f"\n{part.__name__}: {type(e).__name__}: {e}")
