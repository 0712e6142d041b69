//! One survey of the directories of a run: inspect each, scan the processes
//! where the answer needs it, judge, and ask the servers.

pub mod report;
