//! Newline framing for client connections, as ElectrumX's: a line longer than MAX_RECV
//! is dropped with a warning and reading resumes at the next newline.

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
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    return Ok(Some(line));
                }
                None => {
                    if buf.len() > self.max_line {
                        if !self.discarding {
                            log::warn!(
                                "dropping a request longer than MAX_RECV ({} bytes)",
                                self.max_line
                            );
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
}
