//! Newline framing for client connections, as ElectrumX's: a line longer than MAX_RECV
//! is dropped with a warning and reading resumes at the next newline. The limit holds
//! whether the line arrives over many reads or whole in one, and a partial line is
//! never kept past MAX_RECV (plus at most the read in progress).

use bytes::BytesMut;
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
