//! Messaging semantic conventions (semantic-conventions v1.44.0, `model/messaging/`,
//! development): the "send" (PRODUCER) and "process" (CONSUMER) spans of a task queue. Pure
//! Rust: the hooks (`hooks::messaging`) pass what they saw as text.
//!
//! - `messaging.system`: the system's name (`celery`: the conventions' list is open and names no
//!   task queue; `celery` is the value the pure-Python agent's Celery instrumentation uses);
//! - `messaging.operation.type` / `messaging.operation.name`: `send` or `process`;
//! - `messaging.destination.name`: the queue the message goes to / came from;
//! - `messaging.message.id`: the message's id (a Celery task id);
//! - span name `{messaging.operation.name} {destination}`, or the operation alone when the
//!   destination is unknown (an eagerly applied task has none).

use crate::span::Text;

pub const MESSAGING_SYSTEM: &str = "messaging.system";
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// ferrotel's own (semconv/ferrotel.yaml): the conventions have no attribute for a task's name.
pub const CELERY_TASK_NAME: &str = "ferrotel.celery.task.name";

pub const CELERY: &str = "celery";
pub const SEND: &str = "send";
pub const PROCESS: &str = "process";

/// `{operation} {destination}`, or `{operation}` without a destination.
pub fn span_name(operation: &'static str, destination: Option<&str>) -> Text {
    match destination.filter(|d| !d.is_empty()) {
        Some(d) => {
            let mut name = Text::with_capacity(operation.len() + 1 + d.len());
            name.push_str(operation);
            name.push(' ');
            name.push_str(d);
            name
        }
        None => Text::const_new(operation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_operation_then_destination() {
        assert_eq!(span_name(SEND, Some("celery")), "send celery");
        assert_eq!(span_name(PROCESS, Some("emails")), "process emails");
        assert_eq!(span_name(PROCESS, None), "process");
        assert_eq!(span_name(SEND, Some("")), "send");
    }
}
