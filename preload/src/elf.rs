//! Finds an exported function of the (already loaded and initialised) C library by reading its
//! ELF dynamic symbol table in memory, the way the dynamic loader itself does, so that this
//! library needs neither a `DT_NEEDED` entry on a libc nor an undefined symbol.
//!
//! Every read is checked against the C library's readable mappings from `/proc/self/maps`, and
//! every count and offset taken from memory is bounded: a malformed or unexpected image makes the
//! lookup fail, never fault.

use crate::maps::Range;

#[cfg(target_arch = "x86_64")]
const EM_HOST: u16 = 62; // EM_X86_64
#[cfg(target_arch = "aarch64")]
const EM_HOST: u16 = 183; // EM_AARCH64

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: i64 = 0;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_STRSZ: i64 = 10;
const DT_SYMENT: i64 = 11;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STT_FUNC: u8 = 2;
const SYM_SIZE: usize = 24; // Elf64_Sym
const PHDR_SIZE: usize = 56; // Elf64_Phdr
const MAX_PHDRS: usize = 64;
const MAX_DYN: usize = 512;
/// Upper bound on hash-chain steps (glibc has about 3,000 dynamic symbols).
const MAX_CHAIN: usize = 1 << 16;

/// Readable memory, as recorded from `/proc/self/maps`.
pub struct Memory<'a> {
    ranges: &'a [Range],
}

impl<'a> Memory<'a> {
    pub fn new(ranges: &'a [Range]) -> Self {
        Memory { ranges }
    }

    /// Whether `[addr, addr + len)` lies in readable mappings (possibly several adjacent ones).
    fn covered(&self, mut addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        for _ in 0..=self.ranges.len() {
            match self.ranges.iter().find(|r| r.readable && r.start <= addr && addr < r.end) {
                Some(r) if r.end >= end => return true,
                Some(r) => addr = r.end,
                None => return false,
            }
        }
        false
    }

    fn executable(&self, addr: usize) -> bool {
        self.ranges.iter().any(|r| r.executable && r.readable && r.start <= addr && addr < r.end)
    }

    fn bytes<const N: usize>(&self, addr: usize) -> Option<[u8; N]> {
        if !self.covered(addr, N) {
            return None;
        }
        // SAFETY: the N bytes at `addr` are mapped readable (checked above) and belong to the
        // loaded C library image, which stays mapped for the life of the process.
        Some(unsafe { core::ptr::read_unaligned(addr as *const [u8; N]) })
    }

    fn u8(&self, addr: usize) -> Option<u8> {
        self.bytes::<1>(addr).map(|b| b[0])
    }
    fn u16(&self, addr: usize) -> Option<u16> {
        self.bytes::<2>(addr).map(u16::from_le_bytes)
    }
    fn u32(&self, addr: usize) -> Option<u32> {
        self.bytes::<4>(addr).map(u32::from_le_bytes)
    }
    fn u64(&self, addr: usize) -> Option<u64> {
        self.bytes::<8>(addr).map(u64::from_le_bytes)
    }
    fn usize(&self, addr: usize) -> Option<usize> {
        self.u64(addr).and_then(|v| usize::try_from(v).ok())
    }
}

/// The dynamic symbol lookup structures of one loaded ELF image.
pub struct Image<'a> {
    mem: Memory<'a>,
    base: usize,
    symtab: usize,
    strtab: usize,
    strsz: Option<usize>,
    gnu_hash: Option<usize>,
    sysv_hash: Option<usize>,
    versym: Option<usize>,
}

fn at(base: usize, offset: usize) -> Option<usize> {
    base.checked_add(offset)
}

impl<'a> Image<'a> {
    /// Reads the ELF header at `header` (the mapping of file offset 0).
    pub fn open(mem: Memory<'a>, header: usize) -> Option<Self> {
        if mem.bytes::<4>(header)? != *b"\x7fELF" {
            return None;
        }
        // 64-bit, little-endian, shared object, this machine.
        if mem.u8(at(header, 4)?)? != 2 || mem.u8(at(header, 5)?)? != 1 {
            return None;
        }
        if mem.u16(at(header, 16)?)? != 3 || mem.u16(at(header, 18)?)? != EM_HOST {
            return None;
        }
        let phoff = mem.usize(at(header, 0x20)?)?;
        let phentsize = mem.u16(at(header, 0x36)?)? as usize;
        let phnum = mem.u16(at(header, 0x38)?)? as usize;
        if phentsize != PHDR_SIZE || phnum == 0 || phnum > MAX_PHDRS {
            return None;
        }
        let phdrs = at(header, phoff)?;

        // The load bias: the segment at file offset 0 is mapped at `header`.
        let mut base = None;
        let mut dynamic = None;
        for i in 0..phnum {
            let ph = at(phdrs, i.checked_mul(PHDR_SIZE)?)?;
            let p_type = mem.u32(ph)?;
            let p_offset = mem.usize(at(ph, 8)?)?;
            let p_vaddr = mem.usize(at(ph, 16)?)?;
            let p_memsz = mem.usize(at(ph, 40)?)?;
            if p_type == PT_LOAD && p_offset == 0 && base.is_none() {
                base = Some(header.checked_sub(p_vaddr)?);
            }
            if p_type == PT_DYNAMIC {
                dynamic = Some((p_vaddr, p_memsz));
            }
        }
        let base = base?;
        let (dyn_vaddr, dyn_size) = dynamic?;
        let dyn_addr = at(base, dyn_vaddr)?;
        let dyn_count = (dyn_size / 16).min(MAX_DYN);

        let (mut symtab, mut strtab, mut strsz, mut syment) = (None, None, None, None);
        let (mut gnu_hash, mut sysv_hash, mut versym) = (None, None, None);
        for i in 0..dyn_count {
            let entry = at(dyn_addr, i.checked_mul(16)?)?;
            let tag = mem.u64(entry)? as i64;
            let val = mem.usize(at(entry, 8)?)?;
            if tag == DT_NULL {
                break;
            }
            // glibc's loader rewrites the address entries of a loaded object's dynamic section to
            // absolute addresses; musl leaves them relative to the load bias.
            let addr = || {
                if val < base { base.checked_add(val) } else { Some(val) }
            };
            match tag {
                DT_SYMTAB => symtab = addr(),
                DT_STRTAB => strtab = addr(),
                DT_GNU_HASH => gnu_hash = addr(),
                DT_HASH => sysv_hash = addr(),
                DT_VERSYM => versym = addr(),
                DT_STRSZ => strsz = Some(val),
                DT_SYMENT => syment = Some(val),
                _ => {}
            }
        }
        if syment.is_some_and(|s| s != SYM_SIZE) || (gnu_hash.is_none() && sysv_hash.is_none()) {
            return None;
        }
        Some(Image { mem, base, symtab: symtab?, strtab: strtab?, strsz, gnu_hash, sysv_hash, versym })
    }

    /// The address of the exported function `name` (default symbol version), if any.
    pub fn function(&self, name: &[u8]) -> Option<usize> {
        match self.gnu_hash {
            Some(table) => self.lookup_gnu(table, name),
            None => self.lookup_sysv(self.sysv_hash?, name),
        }
    }

    fn lookup_gnu(&self, table: usize, name: &[u8]) -> Option<usize> {
        let m = &self.mem;
        let nbuckets = m.u32(table)? as usize;
        let symoffset = m.u32(at(table, 4)?)? as usize;
        let bloom_size = m.u32(at(table, 8)?)? as usize;
        let buckets = at(table, 16usize.checked_add(bloom_size.checked_mul(8)?)?)?;
        let chains = at(buckets, nbuckets.checked_mul(4)?)?;
        let hash = gnu_hash(name);
        let bucket = (hash as usize).checked_rem(nbuckets)?;
        let mut index = m.u32(at(buckets, bucket * 4)?)? as usize;
        if index < symoffset {
            return None; // empty bucket (0) or a malformed one
        }
        for _ in 0..MAX_CHAIN {
            let chain_hash = m.u32(at(chains, (index - symoffset).checked_mul(4)?)?)?;
            if (chain_hash | 1) == (hash | 1)
                && let Some(addr) = self.check(index, name)
            {
                return Some(addr);
            }
            if chain_hash & 1 != 0 {
                return None;
            }
            index = index.checked_add(1)?;
        }
        None
    }

    fn lookup_sysv(&self, table: usize, name: &[u8]) -> Option<usize> {
        let m = &self.mem;
        let nbucket = m.u32(table)? as usize;
        let nchain = m.u32(at(table, 4)?)? as usize;
        let buckets = at(table, 8)?;
        let chains = at(buckets, nbucket.checked_mul(4)?)?;
        let bucket = (sysv_hash(name) as usize).checked_rem(nbucket)?;
        let mut index = m.u32(at(buckets, bucket * 4)?)? as usize;
        for _ in 0..nchain.min(MAX_CHAIN) {
            if index == 0 || index >= nchain {
                return None;
            }
            if let Some(addr) = self.check(index, name) {
                return Some(addr);
            }
            index = m.u32(at(chains, index.checked_mul(4)?)?)? as usize;
        }
        None
    }

    /// The address of symbol `index` if it is the default version of the defined, exported
    /// function `name`, inside an executable mapping of this image.
    fn check(&self, index: usize, name: &[u8]) -> Option<usize> {
        let m = &self.mem;
        let sym = at(self.symtab, index.checked_mul(SYM_SIZE)?)?;
        let st_name = m.u32(sym)? as usize;
        let st_info = m.u8(at(sym, 4)?)?;
        let st_shndx = m.u16(at(sym, 6)?)?;
        let st_value = m.usize(at(sym, 8)?)?;
        if !self.name_is(st_name, name) {
            return None;
        }
        let (bind, kind) = (st_info >> 4, st_info & 0xf);
        if !(bind == STB_GLOBAL || bind == STB_WEAK) || kind != STT_FUNC || st_shndx == 0 || st_value == 0 {
            return None;
        }
        if let Some(versym) = self.versym {
            let version = m.u16(at(versym, index.checked_mul(2)?)?)?;
            // 0: local; bit 15: a hidden (non-default) version such as an old compatibility symbol.
            if version == 0 || version & 0x8000 != 0 {
                return None;
            }
        }
        let addr = at(self.base, st_value)?;
        if self.mem.executable(addr) { Some(addr) } else { None }
    }

    fn name_is(&self, offset: usize, name: &[u8]) -> bool {
        if let Some(size) = self.strsz {
            match offset.checked_add(name.len()) {
                Some(end) if end < size => {}
                _ => return false,
            }
        }
        let Some(start) = at(self.strtab, offset) else {
            return false;
        };
        for (i, &expected) in name.iter().chain(core::iter::once(&0u8)).enumerate() {
            match at(start, i).and_then(|a| self.mem.u8(a)) {
                Some(byte) if byte == expected => {}
                _ => return false,
            }
        }
        true
    }
}

fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

fn sysv_hash(name: &[u8]) -> u32 {
    let mut h = 0u32;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}
