//! A month's visit quota and what carries into the next month. A month's line holds `granted`
//! (the month's own quota plus what was carried in) and `used`. Visits are taken from the
//! carried-in ones first, as they lapse sooner: what carries on is only the month's own quota
//! left, once, so unused visits never pile up past one month.

/// The month's own visits left, which an item that allows it carries into the next month.
pub fn carry_out(granted: i64, carried: i64, used: i64) -> i64 {
    let own = (granted - carried).max(0);
    let own_used = (used - carried).max(0);
    (own - own_used).max(0)
}

/// Visits that lapsed at the end of a past month: all that was left, or, where the item carries
/// over, only the carried-in ones still unused (the month's own went on to the next).
pub fn expired(granted: i64, carried: i64, used: i64, carries_over: bool) -> i64 {
    let left = (granted - used).max(0);
    if carries_over {
        left - carry_out(granted, carried, used)
    } else {
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_visits_are_used_first_and_only_the_months_own_carry_on() {
        // 4 a month, none carried in, 1 used: 3 carry on, nothing lapses.
        assert_eq!(carry_out(4, 0, 1), 3);
        assert_eq!(expired(4, 0, 1, true), 0);
        // 4 + 3 carried, 2 used: the 2 came from the carried; the own 4 carry on, 1 carried lapses.
        assert_eq!(carry_out(7, 3, 2), 4);
        assert_eq!(expired(7, 3, 2, true), 1);
        // 4 + 3 carried, 5 used: 3 carried and 2 own used; 2 own carry on, nothing lapses.
        assert_eq!(carry_out(7, 3, 5), 2);
        assert_eq!(expired(7, 3, 5, true), 0);
        // All used: nothing carries, nothing lapses.
        assert_eq!(carry_out(7, 3, 7), 0);
        assert_eq!(expired(7, 3, 7, true), 0);
        // An item that does not carry: what is left lapses.
        assert_eq!(expired(4, 0, 1, false), 3);
        // A ledger never says more used than granted, but the arithmetic stays at zero if it did.
        assert_eq!(carry_out(2, 0, 5), 0);
        assert_eq!(expired(2, 0, 5, true), 0);
    }
}
