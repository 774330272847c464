//! What a failed run reports: the invariant, the seed, the step, the trace and the
//! command that replays it.

use core::fmt;

/// A broken invariant: the name of the function that checks it and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's function name in the simulator's `invariants` module.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// A failed run, with everything needed to understand and replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The step at which the violation was seen (0-based).
    pub step: u64,
    /// Virtual time then.
    pub at: String,
    /// What broke.
    pub violation: Violation,
    /// The options, as printed at the start.
    pub options: String,
    /// The last lines of the transcript.
    pub trace: Vec<String>,
    /// The command that replays the run.
    pub replay: String,
}

impl Failure {
    /// Whether two failures are the same failure (same seed, step and violation): what a
    /// replay must give.
    pub fn same_as(&self, other: &Failure) -> bool {
        self.seed == other.seed && self.step == other.step && self.violation == other.violation
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invariant violated: {}", self.violation.invariant)?;
        writeln!(f, "seed={} step={} at={}", self.seed, self.step, self.at)?;
        writeln!(f, "{}", self.violation.detail)?;
        writeln!(f, "options:\n{}", self.options)?;
        writeln!(f, "trace (last {} records):", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "seed={} step={} invariant={}",
            self.seed, self.step, self.violation.invariant
        )?;
        write!(f, "replay: {}", self.replay)
    }
}
