//! The response future of [`SessionService`](super::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::Response;

use super::writeback::{self, WriteBack};
use crate::session::RequestSession;

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`](super::SessionService):
    /// the inner service's response, then the session's write-back.
    ///
    /// The write-back runs only for requests that extracted a session; it is
    /// boxed separately so that the (often large) inner future is never moved.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Arc<RequestSession>>,
        finishing: Option<Pin<Box<dyn Future<Output = Response<B>> + Send>>>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn new(inner: F, session: Arc<RequestSession>) -> Self {
        Self {
            inner,
            session: Some(session),
            finishing: None,
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(finishing) = this.finishing.as_mut() {
            return finishing.as_mut().poll(cx).map(Ok);
        }
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Ready(Ok(response)) => response,
        };
        let session = this.session.take().expect("polled after completion");
        if !session.was_loaded() {
            return Poll::Ready(Ok(response));
        }
        // Most requests need no store I/O at the end (read-only, no refresh
        // due): they finish here, synchronously.
        let (work, committed) = match writeback::plan(&session, response.status().is_server_error())
        {
            (WriteBack::Ready(outcome), committed) => {
                let context = (&**session.settings(), session.storage());
                writeback::apply(context, outcome, committed, &mut response);
                return Poll::Ready(Ok(response));
            }
            (WriteBack::Pending(work), committed) => (work, committed),
        };
        // A store whose operations are synchronous (a `MemoryStore`, a
        // client-side store's request-local one) finishes the work in one
        // poll: run it here, without boxing it. It only pends when a
        // conflict makes it wait before a retry; it is then dropped (it
        // borrows the work, and a save that conflicted wrote nothing) and
        // run again below, where it can wait.
        if session.storage().is_synchronous() {
            let context = (&**session.settings(), session.storage());
            let run = std::pin::pin!(work.run(context.0, context.1));
            if let Poll::Ready(outcome) = run.poll(&mut Context::from_waker(Waker::noop())) {
                writeback::apply(context, outcome, committed, &mut response);
                return Poll::Ready(Ok(response));
            }
        }
        let settings = Arc::clone(session.settings());
        let storage = session.storage().clone();
        drop(session);
        let mut finishing: Pin<Box<dyn Future<Output = Response<B>> + Send>> =
            Box::pin(async move {
                let outcome = work.run(&settings, &storage).await;
                writeback::apply((&settings, &storage), outcome, committed, &mut response);
                response
            });
        let poll = finishing.as_mut().poll(cx);
        if poll.is_pending() {
            *this.finishing = Some(finishing);
        }
        poll.map(Ok)
    }
}
