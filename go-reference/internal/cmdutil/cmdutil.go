// Package cmdutil holds the command-line helpers every service binary shares:
// flags fall back to environment variables, and numeric values are checked
// with errors that name the flag.
package cmdutil

import (
	"fmt"
	"strconv"
	"time"
)

// Env returns a lookup that yields the variable's value, or def when it is
// unset or empty (an empty variable counts as unset).
func Env(getenv func(string) string) func(name, def string) string {
	return func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
}

// Integer parses v as a decimal integer within [least, most] for flag --name.
func Integer(name, v string, least, most int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < least || n > most {
		return 0, fmt.Errorf("--%s: want an integer from %d to %d, got %q", name, least, most, v)
	}
	return n, nil
}

// Millis parses v as a whole number of milliseconds >= least for flag --name.
func Millis(name, v string, least int64) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < least || n > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return 0, fmt.Errorf("--%s: want an integer of milliseconds >= %d, got %q", name, least, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}
