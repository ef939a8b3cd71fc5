//! `device-check` on the CPU against itself: the code path a GPU session runs, end to end.

mod common;

#[test]
fn device_check_compares_every_distance_and_the_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("check.json");
    let args = ["device-check", "--model", "ConvNetW4", "--batch-real", "8", "--iterations", "2", "--json", json.to_str().unwrap()];
    let out = common::gradmatch(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["gradients"].as_array().unwrap();
    let plugins = gradmatch_plugins::Plugins::builtin();
    assert_eq!(
        rows.len(),
        plugins.method.level.len() * plugins.method.distance.len(),
        "every registered level x every registered distance"
    );
    for row in rows {
        // The same device twice: bit-identical, and a real (non-zero) loss.
        assert_eq!(row["relative_error"].as_f64().unwrap(), 0.0, "{row}");
        // TF32 is a cuBLAS switch: on the CPU it changes nothing.
        assert_eq!(row["relative_error_tf32"].as_f64().unwrap(), 0.0, "{row}");
        assert!(row["loss_cpu"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert_eq!(report["losses_cpu"].as_array().unwrap().len(), 2);
    assert_eq!(report["losses_cpu"], report["losses_device"]);
}
