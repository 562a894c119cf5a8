//! `HeaderSpan`: where a header line sits in a parsed head. The request loop
//! (`server::fast`) and the upstream response parser (`h1`) both keep heads as their bytes
//! plus these offsets, instead of a `HeaderMap`.

/// Where one header line's name and value sit in a parsed head, as offsets, so they can be
/// read from (or shared with) the head's bytes once the parser has let go of the buffer.
/// The request loop (`server::fast`) and the upstream response parser both record them.
#[derive(Clone, Copy, Default)]
pub struct HeaderSpan {
    name_at: u32,
    name_len: u32,
    value_at: u32,
    value_len: u32,
}

impl HeaderSpan {
    /// The span of `h`, a header httparse found in the buffer that starts at `base`.
    #[inline]
    pub fn of(base: *const u8, h: &httparse::Header<'_>) -> HeaderSpan {
        // A head is at most `h1::MAX_HEAD` plus one read: offsets fit in u32.
        let at = |s: &[u8]| (s.as_ptr() as usize - base as usize) as u32;
        HeaderSpan {
            name_at: at(h.name.as_bytes()),
            name_len: h.name.len() as u32,
            value_at: at(h.value),
            value_len: h.value.len() as u32,
        }
    }

    /// Where the header line starts in the head.
    #[inline]
    pub fn start(&self) -> usize {
        self.name_at as usize
    }

    #[inline]
    pub fn name<'h>(&self, head: &'h [u8]) -> &'h [u8] {
        &head[self.name_at as usize..(self.name_at + self.name_len) as usize]
    }

    #[inline]
    pub fn value_range(&self) -> std::ops::Range<usize> {
        self.value_at as usize..(self.value_at + self.value_len) as usize
    }

    #[inline]
    pub fn value<'h>(&self, head: &'h [u8]) -> &'h [u8] {
        &head[self.value_range()]
    }
}
