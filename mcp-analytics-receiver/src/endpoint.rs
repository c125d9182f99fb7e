//! The receiver's own [`Listener`] for `axum::serve`: it can stop listening and listen again on
//! the same port ([`crate::Receiver::go_down`], [`crate::Receiver::go_up`]), and it wraps every
//! accepted connection in a [`Conn`] that can be broken from outside hyper: all of them when the
//! endpoint goes down, or the one a handler is answering with [`crate::Scripted::Reset`].
//!
//! Why here: axum answers requests, it does not let a handler close or reset its connection, and
//! `axum::serve` owns the listening socket. Owning the listener and the connections' IO is the
//! one place where both can be done with axum as it is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::state::{Availability, Shared};

/// Listens while the endpoint is wanted up; when it is wanted down, closes the listening socket
/// (new connections are refused by the kernel) and breaks every open connection.
pub(crate) struct Endpoint {
    shared: Arc<Shared>,
    addr: SocketAddr,
    listener: Option<TcpListener>,
    wanted: watch::Receiver<Availability>,
    /// Every connection accepted, to break them on the way down; pruned as they close.
    connections: Vec<Weak<Control>>,
}

impl Endpoint {
    /// Serves `listener`, bound to `addr`, and follows the availability `shared` asks for.
    pub(crate) fn new(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) -> Endpoint {
        let wanted = shared.watch_availability();
        shared.update(|store| store.listening = true);
        Endpoint {
            shared,
            addr,
            listener: Some(listener),
            wanted,
            connections: Vec::new(),
        }
    }

    /// Brings the listener in line with what is wanted.
    fn follow(&mut self, wanted: Availability) {
        if wanted.up && self.listener.is_none() {
            let handoff = self.shared.lock().handoff.take();
            if let Some(bound) = handoff {
                match TcpListener::from_std(bound) {
                    Ok(listener) => self.listener = Some(listener),
                    Err(error) => {
                        eprintln!("mcp-analytics-receiver: cannot listen again: {error}");
                    }
                }
            }
            let listening = self.listener.is_some();
            self.shared.update(|store| store.listening = listening);
        } else if !wanted.up && self.listener.is_some() {
            // Closes the socket: from now on connecting is refused.
            self.listener = None;
            for control in self.connections.drain(..) {
                if let Some(control) = control.upgrade() {
                    control.break_off(Break::Down);
                }
            }
            self.shared.update(|store| store.listening = false);
        }
    }

    fn adopt(&mut self, stream: TcpStream) -> Conn {
        self.connections
            .retain(|control| control.strong_count() > 0);
        let control = Arc::new(Control::default());
        self.connections.push(Arc::downgrade(&control));
        self.shared.update(|store| store.open_connections += 1);
        Conn {
            stream,
            control,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Listener for Endpoint {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let wanted = *self.wanted.borrow_and_update();
            self.follow(wanted);
            let accepted = match &self.listener {
                Some(listener) => tokio::select! {
                    accepted = listener.accept() => Some(accepted),
                    _ = self.wanted.changed() => None,
                },
                None => {
                    if self.wanted.changed().await.is_err() {
                        // The sender lives as long as the receiver's state: not reached.
                        std::future::pending::<()>().await;
                    }
                    None
                }
            };
            match accepted {
                Some(Ok((stream, peer))) => return (self.adopt(stream), peer),
                // Out of file descriptors and the like: what axum's own listener does.
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                None => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// How a connection is broken from outside hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// [`crate::Scripted::Reset`] on the request it carries.
    Reset,
    /// The endpoint went down.
    Down,
}

/// The shared side of one connection.
#[derive(Default)]
pub(crate) struct Control {
    state: Mutex<ControlState>,
}

#[derive(Default)]
struct ControlState {
    broken: Option<Break>,
    /// The tasks last blocked reading or writing, woken when the connection is broken.
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn break_off(&self, how: Break) {
        let mut state = self.lock();
        state.broken.get_or_insert(how);
        let wakers = [state.reader.take(), state.writer.take()];
        drop(state);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Before each read or write: the error to fail it with if broken, else remembers who to
    /// wake if it gets broken while that read or write waits.
    fn check(&self, context: &Context<'_>, writing: bool) -> Option<io::Error> {
        let mut state = self.lock();
        if let Some(how) = state.broken {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                match how {
                    Break::Reset => "connection reset (Scripted::Reset)",
                    Break::Down => "connection closed: the receiver went down",
                },
            ));
        }
        let slot = if writing {
            &mut state.writer
        } else {
            &mut state.reader
        };
        match slot {
            Some(waker) if waker.will_wake(context.waker()) => {}
            _ => *slot = Some(context.waker().clone()),
        }
        None
    }
}

/// A handle on the connection a request came on, put in the request's extensions by
/// `into_make_service_with_connect_info`.
#[derive(Clone)]
pub(crate) struct ConnHandle(Arc<Control>);

impl ConnHandle {
    /// Makes the connection fail every further read and write, so hyper drops it without
    /// answering (writing the answer's head is what fails); the socket is then closed with
    /// `SO_LINGER` 0: the peer gets an RST.
    pub(crate) fn break_off(&self, how: Break) {
        self.0.break_off(how);
    }
}

impl Connected<IncomingStream<'_, Endpoint>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, Endpoint>) -> ConnHandle {
        ConnHandle(Arc::clone(&stream.io().control))
    }
}

/// An accepted connection: the socket, breakable through its [`Control`].
pub(crate) struct Conn {
    stream: TcpStream,
    control: Arc<Control>,
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.control.lock().broken.is_some() {
            // A broken connection ends abruptly, as a crashed server's does: close with an RST
            // rather than a FIN. Zero linger never blocks.
            let _ = self.stream.set_zero_linger();
        }
        self.shared
            .update(|store| store.open_connections = store.open_connections.saturating_sub(1));
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.control.check(context, false) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_read(context, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.control.check(context, true) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write(context, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.control.check(context, true) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.control.check(context, true) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.control.check(context, true) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_shutdown(context)
    }
}
