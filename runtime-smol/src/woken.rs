//! [`Woken`]: a future or stream polled only once it asked to be woken and was.
//!
//! The drive loop races a dozen sources on every wake-up, and a source that tries its
//! system call whenever it is polled costs that call every time anything else woke the
//! loop: `async_signal`'s streams read their pipe on every poll, two `recvfrom`s per
//! signal stream per turn, more than the connection's own read and writes when one message
//! came (docs/performance-log.md, "What a wake-up costs on smol").

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use smol::stream::Stream;

/// Wraps `inner`, which must wake the waker it was polled with when it may be ready (as
/// every future and stream must): the first poll reaches it, later ones only after it
/// woke its waker.
pub(crate) struct Woken<T> {
    inner: T,
    signal: Arc<Signal>,
    /// The waker `inner` is polled with: sets the flag, then wakes the caller.
    waker: Waker,
}

/// What `inner`'s waker leaves for the next poll.
struct Signal {
    /// `inner` woke its waker since it was last polled (true at first).
    woken: AtomicBool,
    /// The waker of whoever polled last, woken in turn.
    caller: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let caller = match self.caller.lock() {
            Ok(caller) => caller.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(caller) = caller {
            caller.wake();
        }
    }
}

impl<T> Woken<T> {
    pub(crate) fn new(inner: T) -> Woken<T> {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true),
            caller: Mutex::new(None),
        });
        Woken {
            inner,
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// Whether `inner` is to be polled now; remembers `cx`'s waker first, so a wake
    /// that comes after the check reaches this caller.
    fn due(&self, cx: &Context<'_>) -> bool {
        {
            let mut caller = match self.signal.caller.lock() {
                Ok(caller) => caller,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !caller.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *caller = Some(cx.waker().clone());
            }
        }
        self.signal.woken.swap(false, Ordering::AcqRel)
    }

    /// Polls `inner` with `poll` if it is due, with its own waker. After it gave
    /// something it is polled again next time: what it has next may be there already,
    /// and no wake would come for it.
    fn poll_inner<R>(
        &mut self,
        cx: &Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R>
    where
        T: Unpin,
    {
        if !self.due(cx) {
            return Poll::Pending;
        }
        let got = poll(
            Pin::new(&mut self.inner),
            &mut Context::from_waker(&self.waker),
        );
        if got.is_ready() {
            self.signal.woken.store(true, Ordering::Release);
        }
        got
    }
}

impl<F: Future + Unpin> Future for Woken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.get_mut().poll_inner(cx, F::poll)
    }
}

impl<S: Stream + Unpin> Stream for Woken<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.get_mut().poll_inner(cx, S::poll_next)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use smol::stream::StreamExt;

    use super::*;

    /// A stream that counts its polls and yields what is pushed into a channel.
    struct Counted {
        polls: Rc<Cell<usize>>,
        items: Pin<Box<smol::channel::Receiver<u32>>>,
    }

    impl Stream for Counted {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls.set(self.polls.get() + 1);
            self.items.as_mut().poll_next(cx)
        }
    }

    #[test]
    fn the_inner_stream_is_polled_only_after_it_woke() {
        let polls = Rc::new(Cell::new(0));
        let (tx, items) = smol::channel::unbounded();
        let mut woken = Woken::new(Counted {
            polls: polls.clone(),
            items: Box::pin(items),
        });
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        // The first poll reaches it; it has nothing and keeps the waker.
        assert_eq!(woken.poll_next(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 1);
        // Polled again without news: not reached.
        for _ in 0..5 {
            assert_eq!(woken.poll_next(&mut cx), Poll::Pending);
        }
        assert_eq!(polls.get(), 1);
        // News wakes it, and the next poll reaches it and yields the item.
        tx.try_send(7).expect("send");
        assert_eq!(woken.poll_next(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(polls.get(), 2);
        // Two items at once come with one wake: after the first, the second is polled
        // for without one.
        tx.try_send(8).expect("send");
        tx.try_send(9).expect("send");
        assert_eq!(woken.poll_next(&mut cx), Poll::Ready(Some(8)));
        assert_eq!(woken.poll_next(&mut cx), Poll::Ready(Some(9)));
        assert_eq!(woken.poll_next(&mut cx), Poll::Pending);
        assert_eq!(woken.poll_next(&mut cx), Poll::Pending);
        assert_eq!(polls.get(), 5);
    }

    #[test]
    fn a_wake_reaches_the_latest_caller() {
        smol::block_on(async {
            let (tx, items) = smol::channel::unbounded();
            let polls = Rc::new(Cell::new(0));
            let mut woken = Woken::new(Counted {
                polls,
                items: Box::pin(items),
            });
            let sender = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                tx.send_blocking(3).expect("send");
            });
            // Blocks until the other thread sends: only a wake that reaches block_on's
            // waker lets this complete.
            assert_eq!(woken.next().await, Some(3));
            sender.join().expect("sender");
        });
    }
}
