//! Errors: loading an object, running a program, and the errno values map
//! operations return (as the kernel's `bpf()` syscall and helpers do).

use std::fmt;

/// Why an object or a program could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The ELF object could not be parsed or relocated.
    Elf(String),
    /// A map definition is not supported or is invalid (`map_alloc_check`).
    Map {
        /// Map name.
        map: String,
        /// What is wrong.
        reason: String,
    },
    /// A program-level problem (no such program, wrong type, ...).
    Program {
        /// Program name.
        program: String,
        /// What is wrong.
        reason: String,
    },
    /// An instruction was rejected (what the verifier would refuse).
    Insn {
        /// Program name.
        program: String,
        /// Instruction index in the linked program.
        insn: usize,
        /// Disassembly of the instruction.
        text: Option<String>,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Elf(e) => write!(f, "invalid eBPF object: {e}"),
            LoadError::Map { map, reason } => write!(f, "map {map:?}: {reason}"),
            LoadError::Program { program, reason } => write!(f, "program {program:?}: {reason}"),
            LoadError::Insn {
                program,
                insn,
                text,
                reason,
            } => {
                write!(f, "program {program:?}, instruction {insn}")?;
                if let Some(t) = text {
                    write!(f, " ({t})")?;
                }
                write!(f, ": {reason}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Why a program run stopped with an error instead of a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    /// Program name.
    pub program: String,
    /// Index of the failing instruction in the linked program.
    pub insn: usize,
    /// Disassembly of that instruction.
    pub text: String,
    /// What went wrong.
    pub kind: Fault,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "program {:?}, instruction {} ({}): {}",
            self.program, self.insn, self.text, self.kind
        )
    }
}

impl std::error::Error for RunError {}

/// The reason of a [`RunError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A load or store outside the region the pointer belongs to.
    OutOfBounds {
        /// `read` or `write`.
        access: &'static str,
        /// Which region ("stack", "map value of \"m\"", "packet", ...).
        region: String,
        /// Offset of the access in the region (may be negative).
        offset: i64,
        /// Access size in bytes.
        size: u8,
        /// Region length in bytes.
        len: u64,
    },
    /// A value that is not a pointer (NULL, a scalar) was dereferenced.
    InvalidAddress {
        /// `read` or `write`.
        access: &'static str,
        /// The address.
        addr: u64,
    },
    /// The context or a `bpf_sock` was accessed in a way the verifier refuses
    /// (`sk_reuseport_is_valid_access`, `bpf_sock_is_valid_access`).
    BadFieldAccess {
        /// Which structure.
        object: &'static str,
        /// Offset.
        offset: i64,
        /// Size.
        size: u8,
        /// Why.
        reason: &'static str,
    },
    /// A store into read-only memory (context, `bpf_sock`, `.rodata`).
    ReadOnly {
        /// Which region.
        region: String,
    },
    /// A helper the program type does not offer.
    UnsupportedHelper {
        /// Helper id.
        id: i32,
    },
    /// A helper was called with arguments the verifier would refuse.
    HelperArgument {
        /// Helper name.
        helper: &'static str,
        /// Why.
        reason: String,
    },
    /// The per-call instruction budget was used up.
    InstructionBudget {
        /// The budget.
        limit: u64,
    },
    /// More than `MAX_CALL_FRAMES` nested bpf-to-bpf calls.
    CallDepth,
    /// Division or modulo by zero in strict mode ([`crate::DivZero::Error`]).
    DivisionByZero,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::OutOfBounds {
                access,
                region,
                offset,
                size,
                len,
            } => write!(
                f,
                "out-of-bounds {access} of {size} bytes at offset {offset} of {region} \
                 ({len} bytes)"
            ),
            Fault::InvalidAddress { access, addr } => {
                if *addr < 4096 {
                    write!(f, "{access} through a NULL or scalar pointer ({addr:#x})")
                } else {
                    write!(f, "{access} through an invalid pointer {addr:#x}")
                }
            }
            Fault::BadFieldAccess {
                object,
                offset,
                size,
                reason,
            } => write!(
                f,
                "invalid access to {object}: {size} bytes at offset {offset}: {reason}"
            ),
            Fault::ReadOnly { region } => write!(f, "write into read-only {region}"),
            Fault::UnsupportedHelper { id } => write!(
                f,
                "helper {id} ({}) is not available to BPF_PROG_TYPE_SK_REUSEPORT in the simulator",
                crate::insn::helper_name(*id)
            ),
            Fault::HelperArgument { helper, reason } => write!(f, "{helper}: {reason}"),
            Fault::InstructionBudget { limit } => {
                write!(
                    f,
                    "instruction budget of {limit} instructions per call exceeded"
                )
            }
            Fault::CallDepth => write!(f, "more than 8 nested bpf-to-bpf call frames"),
            Fault::DivisionByZero => write!(f, "division by zero"),
        }
    }
}

/// An errno value returned by a map operation or a helper (the helper
/// returns it negated, as the kernel does).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EPERM` (1).
    Perm,
    /// `ENOENT` (2): no such element.
    NoEnt,
    /// `EBADF` (9): not a socket handle the host knows.
    BadF,
    /// `EBUSY` (16): the socket is already in a reuseport array or sockmap.
    Busy,
    /// `EEXIST` (17): `BPF_NOEXIST` and the element exists.
    Exist,
    /// `EINVAL` (22).
    Inval,
    /// `ENOSPC` (28): value size does not fit the operation.
    NoSpc,
    /// `E2BIG` (7): index beyond `max_entries`, or the map is full.
    TooBig,
    /// `EAFNOSUPPORT` (97): selected socket of another address family.
    AfNoSupport,
    /// `EPROTOTYPE` (91): selected socket of another protocol.
    ProtoType,
    /// `EOPNOTSUPP` (95).
    OpNotSupp,
    /// `EBADFD` (77): selected socket in another reuseport group.
    BadFd,
    /// `EFAULT` (14): a helper could not read the packet.
    Fault,
    /// `ENOTSUPP` (524, kernel-internal).
    NotSupp,
}

impl Errno {
    /// The positive errno number.
    pub fn code(self) -> i64 {
        match self {
            Errno::Perm => 1,
            Errno::NoEnt => 2,
            Errno::TooBig => 7,
            Errno::BadF => 9,
            Errno::Fault => 14,
            Errno::Busy => 16,
            Errno::Exist => 17,
            Errno::Inval => 22,
            Errno::NoSpc => 28,
            Errno::BadFd => 77,
            Errno::ProtoType => 91,
            Errno::OpNotSupp => 95,
            Errno::AfNoSupport => 97,
            Errno::NotSupp => 524,
        }
    }

    /// The symbolic name (`ENOENT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Errno::Perm => "EPERM",
            Errno::NoEnt => "ENOENT",
            Errno::TooBig => "E2BIG",
            Errno::BadF => "EBADF",
            Errno::Fault => "EFAULT",
            Errno::Busy => "EBUSY",
            Errno::Exist => "EEXIST",
            Errno::Inval => "EINVAL",
            Errno::NoSpc => "ENOSPC",
            Errno::BadFd => "EBADFD",
            Errno::ProtoType => "EPROTOTYPE",
            Errno::OpNotSupp => "EOPNOTSUPP",
            Errno::AfNoSupport => "EAFNOSUPPORT",
            Errno::NotSupp => "ENOTSUPP",
        }
    }

    /// The helper return value: `-errno` as a 64-bit register.
    pub fn as_ret(self) -> u64 {
        (-self.code()) as u64
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl std::error::Error for Errno {}
