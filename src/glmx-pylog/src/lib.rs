//! Rust `tracing` events delivered to Python `logging` under `glmx.*`.
//!
//! Each glmx extension module links its own copy of this crate (statics are per shared object),
//! so each has its own queue; `glmx._logging` drains all loaded ones.
//!
//! Hot threads never take the GIL: a tracing layer formats each enabled event and pushes it into
//! a bounded channel (dropping, and counting, when full). Python drains the channel from one
//! forwarder (`glmx._logging`), and after each long binding call.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Records kept before the forwarder drains them; beyond this, events are dropped and counted.
const QUEUE_CAPACITY: usize = 16_384;

/// Python logging levels (DEBUG=10 ... ERROR=40); TRACE maps to 5.
fn python_level(level: &Level) -> u8 {
    match *level {
        Level::TRACE => 5,
        Level::DEBUG => 10,
        Level::INFO => 20,
        Level::WARN => 30,
        Level::ERROR => 40,
    }
}

/// Lowest Python level that is forwarded; set from the `glmx` logger's effective level.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(20);
static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Queue {
    sender: SyncSender<Record>,
    receiver: Mutex<Receiver<Record>>,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

type Record = (u8, String, String);

/// `glmx_core::data::loader` -> `glmx.data.loader`; `glmx_config` -> `glmx.config`.
fn logger_name(target: &str) -> String {
    let mut parts = target.split("::");
    let head = parts.next().unwrap_or("glmx");
    let mut name = match head.strip_prefix("glmx_") {
        Some("core") | Some("py") => "glmx".to_string(),
        Some(rest) => format!("glmx.{rest}"),
        None if head == "glmx" => "glmx".to_string(),
        None => format!("glmx.ext.{head}"),
    };
    for part in parts {
        name.push('.');
        name.push_str(part);
    }
    name
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = python_level(event.metadata().level());
        if level < MIN_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let Some(queue) = QUEUE.get() else { return };
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let text = visitor.message + &visitor.fields;
        let record = (level, logger_name(event.metadata().target()), text);
        if queue.sender.try_send(record).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Installs the forwarding subscriber once per process. A host application that installed its
/// own global subscriber first keeps it; glmx then logs through that one.
pub fn install() {
    QUEUE.get_or_init(|| {
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let _ = tracing_subscriber::registry().with(ForwardLayer).try_init();
        Queue {
            sender,
            receiver: Mutex::new(receiver),
        }
    });
}

/// Sets the lowest Python logging level forwarded from Rust.
#[pyfunction]
pub fn set_log_level(level: u8) {
    MIN_LEVEL.store(level, Ordering::Relaxed);
}

/// Takes every queued record without blocking: a list of `(level, logger_name, message)`.
#[pyfunction]
pub fn drain_logs() -> Vec<Record> {
    let Some(queue) = QUEUE.get() else {
        return Vec::new();
    };
    let Ok(receiver) = queue.receiver.lock() else {
        return Vec::new();
    };
    receiver.try_iter().collect()
}

/// Number of records dropped because the queue was full.
#[pyfunction]
pub fn dropped_log_records() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Registers the logging functions on an extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install();
    m.add_function(wrap_pyfunction!(set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(drain_logs, m)?)?;
    m.add_function(wrap_pyfunction!(dropped_log_records, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::logger_name;

    #[test]
    fn maps_targets_to_logger_names() {
        assert_eq!(logger_name("glmx_core::data::loader"), "glmx.data.loader");
        assert_eq!(logger_name("glmx_config::template"), "glmx.config.template");
        assert_eq!(logger_name("glmx_py"), "glmx");
        assert_eq!(logger_name("rayon"), "glmx.ext.rayon");
    }
}
