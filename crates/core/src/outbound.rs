//! Sending the email activities the CRM created (SPEC section 5): every `pending-send` ends
//! `sent`, `send-failed` or `send-uncertain`, and none is sent twice, whenever the process is
//! killed. docs/outbound.md gives the reasoning; this module holds the decisions.
//!
//! A send goes through phases that the store records before the step they name:
//! `claimed` (a pass took it, before it connects), `committing` (MAIL, RCPT and DATA were
//! answered; the message body and its final dot are about to go out), `accepted` (the server
//! answered the final dot with 2xx; the activity is `sent`), `done` (the copy is in Sent and
//! linked). An SMTP server queues a message only once it has read the final dot, so a kill
//! before `committing` sent nothing and the next pass sends again; a kill while `committing`
//! cannot be settled by crmsync (the server may have queued the message, and SMTP has no way to
//! ask), so that activity becomes `send-uncertain` and waits for a person.

use crate::model::ActivityState;

/// Where one send stands, as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Claimed,
    Committing,
    Accepted,
    Done,
    /// A transient failure: sent again once its backoff has run.
    Retry,
    Failed,
    Uncertain,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "claimed",
            Phase::Committing => "committing",
            Phase::Accepted => "accepted",
            Phase::Done => "done",
            Phase::Retry => "retry",
            Phase::Failed => "failed",
            Phase::Uncertain => "uncertain",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Claimed,
            Phase::Committing,
            Phase::Accepted,
            Phase::Done,
            Phase::Retry,
            Phase::Failed,
            Phase::Uncertain,
        ]
        .into_iter()
        .find(|phase| phase.as_str() == text)
    }
}

/// What a pass does with one email activity of the owner's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send it: nothing of it is in a server's queue.
    Send,
    /// Not yet: a transient failure's backoff still runs.
    Wait,
    /// The server accepted it: its copy is still to go into Sent and be linked.
    Append,
    /// A kill came while the server was reading the message: it may have been queued. It
    /// becomes `send-uncertain` and is not sent again without a person deciding.
    Uncertain,
    Nothing,
}

/// The step for an activity in `state` whose send is in `phase` (none yet: `None`);
/// `retry_due` says whether a retry's backoff has run.
pub fn step(state: ActivityState, phase: Option<Phase>, retry_due: bool) -> Step {
    match (state, phase) {
        (ActivityState::PendingSend, Some(Phase::Committing)) => Step::Uncertain,
        (ActivityState::PendingSend, Some(Phase::Retry)) if !retry_due => Step::Wait,
        // Never started, killed before the message went out, a retry that is due, or a send
        // that a person asked for again (`activity resend`, or the state set by hand).
        (ActivityState::PendingSend, _) => Step::Send,
        (ActivityState::Sent, Some(Phase::Accepted)) => Step::Append,
        _ => Step::Nothing,
    }
}

/// How many attempts a send gets when every one fails for a passing reason.
pub const MAX_ATTEMPTS: u32 = 6;

/// After the `attempts`-th attempt failed for a passing reason (a server down, a 4xx): the
/// seconds to wait before the next, `first` doubling each time and at most an hour; `None`
/// when the attempts are used up and the send fails.
pub fn retry_after(attempts: u32, first: u64) -> Option<u64> {
    (attempts < MAX_ATTEMPTS).then(|| {
        let doubled = first.saturating_mul(1 << attempts.saturating_sub(1).min(20));
        doubled.min(3600)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_of_every_state_and_phase() {
        use ActivityState::{PendingSend, Received, Sent};
        let cases = [
            (PendingSend, None, false, Step::Send),
            (PendingSend, Some(Phase::Claimed), false, Step::Send),
            (PendingSend, Some(Phase::Committing), true, Step::Uncertain),
            (PendingSend, Some(Phase::Retry), false, Step::Wait),
            (PendingSend, Some(Phase::Retry), true, Step::Send),
            (PendingSend, Some(Phase::Failed), false, Step::Send),
            (PendingSend, Some(Phase::Uncertain), false, Step::Send),
            (Sent, Some(Phase::Accepted), false, Step::Append),
            (Sent, Some(Phase::Done), false, Step::Nothing),
            (Sent, None, false, Step::Nothing),
            (
                ActivityState::SendUncertain,
                Some(Phase::Uncertain),
                true,
                Step::Nothing,
            ),
            (
                ActivityState::SendFailed,
                Some(Phase::Failed),
                true,
                Step::Nothing,
            ),
            (Received, None, true, Step::Nothing),
        ];
        for (state, phase, due, expected) in cases {
            assert_eq!(
                step(state, phase, due),
                expected,
                "{state:?} {phase:?} {due}"
            );
        }
        for phase in [
            Phase::Claimed,
            Phase::Committing,
            Phase::Accepted,
            Phase::Done,
            Phase::Retry,
            Phase::Failed,
            Phase::Uncertain,
        ] {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(Phase::parse("sending"), None);
    }

    #[test]
    fn retries_back_off_and_end() {
        assert_eq!(retry_after(1, 60), Some(60));
        assert_eq!(retry_after(2, 60), Some(120));
        assert_eq!(retry_after(5, 60), Some(960));
        assert_eq!(retry_after(5, 600), Some(3600), "at most an hour");
        assert_eq!(retry_after(MAX_ATTEMPTS, 60), None);
        assert_eq!(retry_after(1, 0), Some(0));
    }
}
