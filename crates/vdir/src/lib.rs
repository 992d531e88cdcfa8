//! The collection adapter of crmsync: calendars, task lists and address books as vdir
//! directories.
//!
//! - [`content`]: the content-line layer shared by iCalendar (RFC 5545) and vCard (RFC 6350):
//!   folded lines, properties with parameters, components. It round-trips losslessly: a
//!   property crmsync does not touch is written back byte for byte (its folding, its case, its
//!   line ending), so X- properties, VALARMs, VTIMEZONEs and recurrence exceptions survive.
//! - [`calendar`]: the fields of a VEVENT (appointment) or VTODO (task) as a snapshot for the
//!   three-way merge, the tracking category, and writing merged fields back into a component.
//! - [`contacts`]: the fields of a vCard (a contact record), and writing them back.
//! - [`vdir`]: a vdir directory (one item per file, the layout of vdirsyncer, khal, khard and
//!   todoman): listing with etags, reading, and writing the way vdir requires (a temporary file
//!   in the same directory, then a rename: never a half-written file).
//! - [`collection`]: the trait a pass reads and writes a collection through, for a vdir here
//!   and for a CalDAV/CardDAV collection in `crmsync-dav`.
//! - `time`: moments in the CRM's canonical form (UTC, or a date) from TZID local times.
//!
//! The engine's `CollectionPass` observes and writes through this crate; the daemon watches
//! the directories with inotify.
#![forbid(unsafe_code)]

pub mod calendar;
pub mod collection;
pub mod contacts;
pub mod content;
pub mod time;
pub mod vdir;
