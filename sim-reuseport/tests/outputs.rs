//! Output files never destroy what is at their path by accident (README,
//! "Output files"): inputs and repeated outputs are refused, devices and
//! FIFOs are written directly, symbolic links are followed, a failed or
//! interrupted run leaves no temporary file and no half-written output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reuseport-sim"))
}

fn scenario(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_output_that_is_the_scenario_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "nginx-reload.json");
    let before = std::fs::read(&x).unwrap();
    let link = dir.path().join("alias.json");
    std::os::unix::fs::symlink(&x, &link).unwrap();
    for flag in ["--trace", "--pcap", "--plot"] {
        for target in [&x, &link] {
            let o = bin()
                .arg("run")
                .arg(&x)
                .arg(flag)
                .arg(target)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2), "{flag} {}", target.display());
            assert!(
                stderr(&o).contains("refusing to overwrite an input"),
                "{}",
                stderr(&o)
            );
        }
    }
    let o = bin()
        .arg("compare")
        .arg(&x)
        .arg("--plot")
        .arg(&x)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&x).unwrap(), before, "the scenario is intact");
}

#[test]
fn two_outputs_on_one_path_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "nginx-reload.json");
    let t = dir.path().join("out");
    let o = bin()
        .arg("run")
        .arg(&x)
        .arg("--trace")
        .arg(&t)
        .arg("--pcap")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("are the same file"), "{}", stderr(&o));
    assert!(!t.exists());
}

#[test]
fn devices_are_written_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "nginx-reload.json");
    let o = bin()
        .arg("run")
        .arg(&x)
        .args([
            "--trace",
            "/dev/null",
            "--pcap",
            "/dev/null",
            "--plot",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    if Path::new("/dev/full").exists() {
        let o = bin()
            .arg("run")
            .arg(&x)
            .args(["--plot", "/dev/full"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("/dev/full") && stderr(&o).contains("No space left"));
        assert!(std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device());
    }
}

#[test]
fn a_fifo_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "selftest-established.json");
    let fifo = dir.path().join("trace.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let o = bin()
        .arg("run")
        .arg(&x)
        .arg("--trace")
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let trace = reader.join().unwrap();
    assert!(trace.lines().count() > 10 && trace.starts_with("{\"t_ns\""));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn stdout_as_an_output_moves_the_report_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "selftest-established.json");
    let o = bin()
        .arg("run")
        .arg(&x)
        .args(["--trace", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("only trace lines");
        assert!(v["t_ns"].is_u64());
    }
    assert!(
        stderr(&o).contains("connections"),
        "the report is on stderr"
    );
}

#[test]
fn symlinks_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "selftest-established.json");
    let real = dir.path().join("real.svg");
    let link = dir.path().join("plot.svg");
    std::os::unix::fs::symlink("real.svg", &link).unwrap();
    let o = bin()
        .arg("run")
        .arg(&x)
        .arg("--plot")
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real).unwrap().contains("<svg"));
}

#[test]
fn an_interrupted_run_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = scenario(dir.path(), "bench-100k.json");
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, "previous trace\n").unwrap();
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let child = bin()
            .arg("run")
            .arg(&x)
            .arg("--trace")
            .arg(&trace)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the temporary trace holds data.
        let mut waited = 0;
        loop {
            let tmp = std::fs::read_dir(dir.path()).unwrap().find_map(|e| {
                let e = e.unwrap();
                let n = e.file_name().to_string_lossy().into_owned();
                (n.starts_with(".reuseport-sim-") && e.metadata().unwrap().len() > 1 << 20)
                    .then_some(n)
            });
            if tmp.is_some() {
                break;
            }
            waited += 1;
            assert!(waited < 6000, "no temporary trace appeared");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert_eq!(names(dir.path()), ["bench-100k.json", "t.jsonl"]);
        assert_eq!(std::fs::read_to_string(&trace).unwrap(), "previous trace\n");
    }
}
