//! A spinner on stderr while a command waits for the broker. It only draws
//! when stderr is a terminal, so scripts and tests see no control characters.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const TICK: Duration = Duration::from_millis(100);

/// A status line that a background task redraws; a no-op off a terminal.
pub struct Progress {
    message: Arc<Mutex<String>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the spinner with a message. Must be called within the Tokio runtime.
    pub fn start(message: impl Into<String>) -> Self {
        let message = Arc::new(Mutex::new(message.into()));
        let task = std::io::stderr()
            .is_terminal()
            .then(|| tokio::spawn(draw(Arc::clone(&message))));
        Self { message, task }
    }

    /// A progress that never draws, for code paths without a user watching.
    pub fn hidden() -> Self {
        Self {
            message: Arc::new(Mutex::new(String::new())),
            task: None,
        }
    }

    /// Replaces the message.
    pub fn set(&self, message: impl Into<String>) {
        if let Ok(mut current) = self.message.lock() {
            *current = message.into();
        }
    }

    /// Prints `osb: TEXT` on its own line; the spinner redraws below it.
    pub fn note(&self, text: &str) {
        let mut stderr = std::io::stderr().lock();
        if self.task.is_some() {
            let _ = write!(stderr, "\r\x1b[K");
        }
        let _ = writeln!(stderr, "osb: {text}");
    }

    /// Stops drawing and clears the line.
    pub fn finish(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut stderr = std::io::stderr().lock();
            // Ignored, because a closed stderr leaves nothing to clear.
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

async fn draw(message: Arc<Mutex<String>>) {
    let started = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    for frame in FRAMES.iter().cycle() {
        interval.tick().await;
        let text = message.lock().map(|text| text.clone()).unwrap_or_default();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[K{frame} {text} ({}s)",
            started.elapsed().as_secs()
        );
        let _ = stderr.flush();
    }
}
