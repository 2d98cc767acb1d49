// Health with hysteresis (DESIGN.md "Health"): K consecutive failures to mark an
// endpoint down, M consecutive successes to mark it up again. The very first
// result decides at once (there is no earlier verdict to protect), so a daemon
// that just started shows a reachable Redis as up after one check.
#pragma once

namespace regiond::daemon {

class Hysteresis {
public:
    Hysteresis(unsigned down_after, unsigned up_after) noexcept { set_thresholds(down_after, up_after); }

    void set_thresholds(unsigned down_after, unsigned up_after) noexcept {
        down_after_ = down_after == 0 ? 1 : down_after;
        up_after_ = up_after == 0 ? 1 : up_after;
    }

    /// Records one check; true when the verdict changed (the first verdict counts).
    bool record(bool success) noexcept {
        if (success) {
            ++successes_;
            failures_ = 0;
        } else {
            ++failures_;
            successes_ = 0;
        }
        if (!known_) {
            known_ = true;
            up_ = success;
            return true;
        }
        if (!up_ && successes_ >= up_after_) {
            up_ = true;
            return true;
        }
        if (up_ && failures_ >= down_after_) {
            up_ = false;
            return true;
        }
        return false;
    }

    bool up() const noexcept { return up_; }
    bool known() const noexcept { return known_; }

private:
    unsigned down_after_ = 3;
    unsigned up_after_ = 2;
    unsigned successes_ = 0;
    unsigned failures_ = 0;
    bool up_ = false;
    bool known_ = false;
};

}  // namespace regiond::daemon
