//! Paced, plain output an operator can follow: chapters, steps, and the facts each step establishes.

use std::time::Duration;

/// The printer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Say {
    pace: Duration,
    chapter: u32,
}

#[allow(clippy::print_stdout, clippy::unused_self)]
impl Say {
    /// Pauses `pace` after each chapter and step.
    pub(crate) fn new(pace: Duration) -> Self {
        Self { pace, chapter: 0 }
    }

    /// A new chapter.
    pub(crate) fn chapter(&mut self, title: &str) {
        self.chapter += 1;
        println!();
        println!("== {}. {title} ", self.chapter);
        self.pause();
    }

    /// A step being taken.
    pub(crate) fn step(&self, text: &str) {
        println!("  > {text}");
        self.pause();
    }

    /// A fact observed.
    pub(crate) fn fact(&self, text: &str) {
        println!("    {text}");
    }

    /// A check that held.
    pub(crate) fn ok(&self, text: &str) {
        println!("    ok: {text}");
    }

    fn pause(&self) {
        std::thread::sleep(self.pace);
    }
}
