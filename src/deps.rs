//! What the queue machine ([`crate::queue::Queue`]) and the customer
//! sessions ([`crate::session::Sessions`]) are handed when the daemon is
//! built: the configuration and the services they use, each shared by
//! handle.

use std::sync::Arc;

use crate::bus::Bus;
use crate::changes::Changes;
use crate::config::Config;
use crate::primary::PrimaryLink;
use crate::printer::Printer;
use crate::readers::Readers;

/// The services a customer-facing service uses.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub bus: Arc<Bus>,
    pub readers: Arc<Readers>,
    pub printer: Arc<Printer>,
    pub changes: Arc<Changes>,
    /// A secondary queue machine's link to the primary (rule Q7).
    pub primary: Option<Arc<PrimaryLink>>,
}
