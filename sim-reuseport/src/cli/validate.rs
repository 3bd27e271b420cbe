//! `validate`: check scenario files without running them.

use super::{load, Failure, ValidateArgs};
use sim_reuseport::scenario;
use sim_reuseport::vary;

/// `validate`: every file parsed, its `vary` bounds checked, lowered.
pub(crate) fn validate_cmd(a: ValidateArgs) -> Result<(), Failure> {
    let files = a.files;
    let mut bad = Vec::new();
    for f in &files {
        let r = load(f).and_then(|scn| {
            vary::check(&scn, &sim_reuseport::scenario::validate)
                .map_err(|e| Failure::BadInput(e.in_file(&f.display().to_string()).to_string()))?;
            scenario::lower(&scn)
                .map(|_| ())
                .map_err(|e| Failure::BadInput(e.in_file(&f.display().to_string()).to_string()))
        });
        match r {
            Ok(()) => println!("{}: ok", f.display()),
            Err(Failure::BadInput(m)) | Err(Failure::Invariant(m)) => bad.push(m),
        }
    }
    if !bad.is_empty() {
        return Err(Failure::BadInput(bad.join("\n")));
    }
    Ok(())
}
