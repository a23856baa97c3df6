//! What each console route needs, in one table: every handler names one
//! of these, and [`super::require`] / [`super::require_form`] refuse a
//! session whose user's role is below it (403), whatever the page showed.
//! Pages ask [`Need::met_by`] to leave out what a role may not use.

use vakt_ledger::users::ConsoleRole;

/// A thing the console does and the least role that may do it.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Need {
    pub(crate) role: ConsoleRole,
    /// What is refused, for the refusal page: "lifting decisions".
    pub(crate) what: &'static str,
}

impl Need {
    pub(crate) fn met_by(self, role: ConsoleRole) -> bool {
        role.allows(self.role)
    }
}

/// Alerts, an alert, a scope's counts, decisions, canaries, exposure,
/// and signing out.
pub(crate) const READ: Need = Need {
    role: ConsoleRole::Viewer,
    what: "reading the console",
};

/// The customers in a scope: a list of people to notify, shown only to
/// those who may draft the notice.
pub(crate) const CUSTOMERS: Need = Need {
    role: ConsoleRole::Analyst,
    what: "seeing the customers in a scope",
};

/// A breach report draft, which lists the customers.
pub(crate) const DRAFT: Need = Need {
    role: ConsoleRole::Analyst,
    what: "drafting a breach report",
};

/// Adding a throttle or step-up decision, or extending one: more
/// enforcement, never less.
pub(crate) const DECIDE: Need = Need {
    role: ConsoleRole::Analyst,
    what: "adding or extending decisions",
};

/// Adding or extending a block: it stops a customer's or partner's work
/// outright, so it is an admin's call.
pub(crate) const BLOCK: Need = Need {
    role: ConsoleRole::Admin,
    what: "adding or extending a block",
};

/// Adding an exception (marking alerts false positives) or revoking one.
pub(crate) const EXCEPT: Need = Need {
    role: ConsoleRole::Analyst,
    what: "adding or revoking exceptions",
};

/// Working an incident: status, owner, classification, notes, and the
/// exception of a false positive.
pub(crate) const WORK: Need = Need {
    role: ConsoleRole::Analyst,
    what: "changing incidents",
};

/// The audit trail: who did what, from where (addresses, names).
pub(crate) const AUDIT: Need = Need {
    role: ConsoleRole::Analyst,
    what: "reading the audit trail",
};

/// Lifting a decision: undoing enforcement.
pub(crate) const LIFT: Need = Need {
    role: ConsoleRole::Admin,
    what: "lifting decisions",
};
