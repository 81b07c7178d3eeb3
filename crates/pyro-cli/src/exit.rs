//! Exit statuses, mapped in one place.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | pyro failed (host, VM or guest agent problem) |
//! | 2 | bad input (flags, names, ranges, missing environment) |
//! | N | `run`: the guest command's own exit code |
//! | 130, 143 | interrupted by SIGINT, SIGTERM (guests torn down first) |

use pyro_core::Error;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failure,
    Usage,
    /// The guest command's exit code, passed through.
    Guest(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Guest(c) => u8::try_from(c).unwrap_or(1),
        }
    }
}

impl From<&Error> for Exit {
    fn from(e: &Error) -> Exit {
        if e.is_usage() {
            Exit::Usage
        } else {
            Exit::Failure
        }
    }
}
