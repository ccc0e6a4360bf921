//! The 0.4 program of `simplelock-compat-0-4`, after the import 0.4.1's docs give.
// 0.4.1's `LockBuilder::enable_*` took `self` (a copy: they did nothing); the program calls them
// on a `mut` builder, as they take `&mut self` today.
#![allow(unused_mut)]

use simplelock::*;
include!("../../program/v0_4.rs");
