//! External authorities asked about tokens playgate does not know (SPEC §6).

pub mod ministra;
