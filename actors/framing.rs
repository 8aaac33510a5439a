//! Newline framing for client connections, as ElectrumX's: a line longer than MAX_RECV
//! is dropped with a warning and reading resumes at the next newline. The limit holds
//! whether the line arrives over many reads or whole in one, and a partial line is
//! never kept past MAX_RECV (plus at most the read in progress). Lines have deadlines
//! too ([`LineDeadlines`]): the first within FIRST_MESSAGE_TIMEOUT of the connection,
//! every later one within LINE_TIMEOUT of its first byte.

use bytes::BytesMut;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Decoder;

pub struct LineCodec {
    max_line: usize,
    /// Discarding an over-long line until its newline.
    discarding: bool,
    /// Where to resume looking for a newline in the buffer.
    scanned: usize,
}

impl LineCodec {
    pub fn new(max_line: usize) -> LineCodec {
        LineCodec {
            max_line,
            discarding: false,
            scanned: 0,
        }
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, Self::Error> {
        loop {
            match buf[self.scanned..].iter().position(|b| *b == b'\n') {
                Some(offset) => {
                    let end = self.scanned + offset;
                    let mut line = buf.split_to(end + 1);
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    // A whole over-long line in one read: dropped like one over many.
                    if end > self.max_line {
                        warn_over_long(self.max_line);
                        continue;
                    }
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    return Ok(Some(line));
                }
                None => {
                    if buf.len() > self.max_line {
                        if !self.discarding {
                            warn_over_long(self.max_line);
                        }
                        self.discarding = true;
                        buf.clear();
                        self.scanned = 0;
                    } else {
                        self.scanned = buf.len();
                    }
                    return Ok(None);
                }
            }
        }
    }
}

fn warn_over_long(max_line: usize) {
    log::warn!("dropping a request longer than MAX_RECV ({max_line} bytes)");
}

/// Why [`LineDeadlines`] ended a connection (inside its `TimedOut` error).
#[derive(Debug, thiserror::Error)]
pub enum LineLate {
    #[error("no complete first message within FIRST_MESSAGE_TIMEOUT")]
    FirstMessage,
    #[error("a line took longer than LINE_TIMEOUT ({0:?}) to arrive")]
    Line(Duration),
}

impl LineLate {
    /// The reason inside `error`, if it is one.
    pub fn of(error: &std::io::Error) -> Option<&LineLate> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }

    pub fn error(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, self)
    }
}

/// What [`LineDeadlines`] is waiting for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// The first complete line, by FIRST_MESSAGE_TIMEOUT after the connection.
    FirstMessage,
    /// Nothing: the last byte read ended a line (no deadline; SESSION_TIMEOUT applies).
    Nothing,
    /// The end of a line whose first byte has arrived, by LINE_TIMEOUT after it.
    LineEnd,
}

/// A byte stream's reader that fails with `TimedOut` ([`LineLate`]) when a line is late:
/// a client that connects and stays silent, or trickles its first line, gives up its slot
/// (and its buffer) at FIRST_MESSAGE_TIMEOUT; after that, a line begun and not finished
/// within LINE_TIMEOUT of its first byte ends the session, not SESSION_TIMEOUT. A session
/// idle between lines, or a client sending whole lines however slowly, has no deadline
/// here. Only the client's time counts: from the read that brought the line's first
/// byte, and not while the session was not reading (busy with the lines before, or
/// paused because its client does not take its replies), so that a line whose end could
/// not even reach the socket meanwhile is not cut short.
pub struct LineDeadlines<R> {
    inner: R,
    awaiting: Awaiting,
    deadline: Pin<Box<Sleep>>,
    line_timeout: Duration,
    /// When the last read returned bytes: until the next read, the session, not the
    /// client, is the one keeping the line waiting.
    handed_over: Option<Instant>,
}

impl<R> LineDeadlines<R> {
    pub fn new(inner: R, first_message_timeout: Duration, line_timeout: Duration) -> Self {
        LineDeadlines {
            inner,
            awaiting: Awaiting::FirstMessage,
            deadline: Box::pin(tokio::time::sleep(first_message_timeout)),
            line_timeout,
            handed_over: None,
        }
    }

    /// Follows the lines through `read`, bytes just read (not empty).
    fn track(&mut self, read: &[u8]) {
        match read.iter().rposition(|b| *b == b'\n') {
            // A line ended; what follows its last newline is a line begun now.
            Some(last) if last + 1 < read.len() => self.start_line(),
            Some(_) => self.awaiting = Awaiting::Nothing,
            // No newline: a line begins unless one was already under way.
            None if self.awaiting == Awaiting::Nothing => self.start_line(),
            None => {}
        }
    }

    fn start_line(&mut self) {
        self.awaiting = Awaiting::LineEnd;
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.line_timeout);
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LineDeadlines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(since) = this.handed_over.take()
            && this.awaiting == Awaiting::LineEnd
        {
            // The time the session kept the bytes without reading is not the client's.
            let deadline = this.deadline.deadline() + since.elapsed();
            this.deadline.as_mut().reset(deadline);
        }
        let before = buf.filled().len();
        // Read first: what already waits in the socket may finish the line in time.
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.track(&buf.filled()[before..]);
                this.handed_over = Some(Instant::now());
            }
            // End of stream or an error: nothing is late any more.
            Poll::Ready(_) => return read,
            Poll::Pending => {}
        }
        // Polled while the session waits for input, so the timer's waker ends the wait.
        if this.awaiting != Awaiting::Nothing && this.deadline.as_mut().poll(cx).is_ready() {
            let late = match this.awaiting {
                Awaiting::FirstMessage => LineLate::FirstMessage,
                _ => LineLate::Line(this.line_timeout),
            };
            return Poll::Ready(Err(late.error()));
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(codec: &mut LineCodec, input: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(line) = codec.decode(&mut buf).unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines_keeping_blank_ones() {
        // A blank line is a message too: ElectrumX answers it with "invalid JSON".
        let mut codec = LineCodec::new(100);
        assert_eq!(
            lines(&mut codec, b"a\r\n\nb\nc"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn drops_an_over_long_line_and_resyncs() {
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"abc\nok\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap().to_vec(),
            b"ok".to_vec()
        );
    }

    #[test]
    fn drops_an_over_long_line_that_arrives_whole() {
        let mut codec = LineCodec::new(4);
        assert_eq!(
            lines(
                &mut codec,
                b"0123456789
abcd
ok
"
            ),
            vec![b"abcd".to_vec(), b"ok".to_vec()]
        );
    }

    #[test]
    fn drops_an_over_long_line_completed_by_a_later_read() {
        // Under the limit after the first read, over it once the newline arrives.
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"012"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(
            b"3456
ok
",
        );
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap().to_vec(),
            b"ok".to_vec()
        );
        assert!(buf.is_empty());
    }

    /// Reads `reader` until it fails, or until `quiet` passes without a byte; the error.
    async fn read_until_quiet<R: AsyncRead + Unpin>(
        reader: &mut LineDeadlines<R>,
        quiet: Duration,
    ) -> Option<std::io::Error> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(quiet, reader.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Some(e),
            }
        }
    }

    #[tokio::test]
    async fn a_line_begun_must_end_within_the_line_timeout() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1024);
        let line_timeout = Duration::from_millis(200);
        let mut reader = LineDeadlines::new(server, Duration::from_secs(10), line_timeout);
        client.write_all(b"first\npart").await.unwrap();
        let dribble = tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if client.write_all(b"x").await.is_err() {
                    break;
                }
            }
        });
        let started = std::time::Instant::now();
        let error = read_until_quiet(&mut reader, Duration::from_secs(2)).await;
        let error = error.expect("the dribbled line is cut off");
        assert!(
            matches!(LineLate::of(&error), Some(LineLate::Line(_))),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_millis(600));
        dribble.abort();
    }

    #[tokio::test]
    async fn whole_lines_and_silence_between_them_have_no_deadline() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1024);
        let line_timeout = Duration::from_millis(100);
        let mut reader = LineDeadlines::new(server, Duration::from_secs(10), line_timeout);
        // Whole lines, each after more than LINE_TIMEOUT; a line split over two writes
        // that ends in time; then silence past LINE_TIMEOUT.
        let writer = tokio::spawn(async move {
            for line in [&b"one\n"[..], b"two\n", b"thr", b"ee\n", b"four\n"] {
                client.write_all(line).await.unwrap();
                tokio::time::sleep(Duration::from_millis(if line.ends_with(b"\n") {
                    150
                } else {
                    30
                }))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            client
        });
        let error = read_until_quiet(&mut reader, Duration::from_millis(400)).await;
        assert!(error.is_none(), "{error:?}");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn time_the_session_does_not_read_is_not_counted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader =
            LineDeadlines::new(server, Duration::from_secs(10), Duration::from_millis(100));
        client.write_all(b"first\npart").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 10);
        // The session stops reading for longer than LINE_TIMEOUT (paused); the client
        // ends its line soon after reading resumes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.write_all(b"\n").await.unwrap();
            client
        });
        assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn the_first_line_has_its_own_deadline() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut reader = LineDeadlines::new(server, Duration::from_millis(100), Duration::ZERO);
        let error = read_until_quiet(&mut reader, Duration::from_secs(2)).await;
        let error = error.expect("a silent connection is closed");
        assert!(
            matches!(LineLate::of(&error), Some(LineLate::FirstMessage)),
            "{error}"
        );
    }

    #[test]
    fn a_partial_line_never_holds_more_than_the_limit() {
        let mut codec = LineCodec::new(8);
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf.extend_from_slice(b"xxxxx");
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(buf.len() <= 8, "{} bytes buffered", buf.len());
        }
    }
}
