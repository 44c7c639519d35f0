//! The device library against the real server, branch by branch.

mod agent;
mod device;
mod rollover;
mod v2;
