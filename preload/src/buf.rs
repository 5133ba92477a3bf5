//! A fixed-capacity byte buffer: no allocation, and every operation reports overflow instead
//! of panicking.

pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf { data: [0; N], len: 0, overflowed: false }
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }

    /// True if something pushed did not fit (the contents are then truncated).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn push(&mut self, byte: u8) -> bool {
        match self.data.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                true
            }
            None => {
                self.overflowed = true;
                false
            }
        }
    }

    pub fn extend(&mut self, bytes: &[u8]) -> bool {
        let end = match self.len.checked_add(bytes.len()) {
            Some(end) => end,
            None => {
                self.overflowed = true;
                return false;
            }
        };
        match self.data.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
                true
            }
            None => {
                // Keep what fits, for truncated log lines.
                let room = N.saturating_sub(self.len);
                if let (Some(dst), Some(src)) = (self.data.get_mut(self.len..), bytes.get(..room))
                    && dst.len() == src.len()
                {
                    dst.copy_from_slice(src);
                    self.len = N;
                }
                self.overflowed = true;
                false
            }
        }
    }

    /// Appends `value` in decimal.
    pub fn push_decimal(&mut self, mut value: u64) -> bool {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (value % 10) as u8;
            }
            value /= 10;
            if value == 0 || i == 0 {
                break;
            }
        }
        self.extend(digits.get(i..).unwrap_or(&[]))
    }

    /// The contents followed by a NUL byte (for system calls and C functions), or None if that
    /// does not fit or the contents contain a NUL themselves.
    pub fn c_str(&mut self) -> Option<&[u8]> {
        if self.overflowed || self.as_bytes().contains(&0) {
            return None;
        }
        let len = self.len;
        let slot = self.data.get_mut(len)?;
        *slot = 0;
        self.data.get(..len + 1)
    }
}
