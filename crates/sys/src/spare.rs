//! A descriptor kept in reserve for refusing connections when the process has none left.
//!
//! When `accept(2)` fails with EMFILE/ENFILE the connection stays in the listen queue and
//! the listener stays readable: a loop that only retries spins, and the client hangs
//! until it gives up. Closing the spare frees one descriptor, so the pending connection
//! can be accepted and closed at once (the client sees a clean close), then the spare is
//! taken back. Each accepting thread (every worker, and the control thread) keeps one:
//! the server and the control plane both use it, so it belongs to neither.

use std::fs::File;
use std::io;
use std::net::TcpListener;

/// Whether an accept failed because the process (or the system) is out of descriptors.
pub fn out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One open descriptor (`/dev/null`) held only to be given up when the others run out.
pub struct Spare(Option<File>);

impl Spare {
    pub fn new() -> Spare {
        Spare(File::open("/dev/null").ok())
    }

    /// Frees the spare, accepts one pending connection and closes it, then takes the
    /// spare back.
    pub fn refuse_one(&mut self, listener: &TcpListener) -> Refusal {
        if self.0.take().is_none() {
            self.0 = File::open("/dev/null").ok();
            return Refusal::NoSpare;
        }
        let r = match listener.accept() {
            Ok((stream, _)) => {
                drop(stream);
                Refusal::Refused
            }
            // accept(2) reports EMFILE before it looks at the queue: it may be empty.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Refusal::NothingPending,
            Err(_) => Refusal::NoSpare,
        };
        self.0 = File::open("/dev/null").ok();
        r
    }
}

impl Default for Spare {
    fn default() -> Spare {
        Spare::new()
    }
}

/// What [`Spare::refuse_one`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A connection was accepted and closed.
    Refused,
    /// The queue was empty: wait for the listener to be readable again.
    NothingPending,
    /// No descriptor could be freed (another thread took it first): back off.
    NoSpare,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_pending_connection_is_accepted_and_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mut spare = Spare::new();
        assert!(spare.0.is_some());
        // The connection may take a moment to reach the accept queue.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while spare.refuse_one(&l) != Refusal::Refused {
            assert!(std::time::Instant::now() < deadline, "never accepted");
        }
        assert!(spare.0.is_some(), "spare taken back");
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).unwrap(), 0, "closed");
        assert_eq!(spare.refuse_one(&l), Refusal::NothingPending);
        assert!(out_of_files(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!out_of_files(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
