package redisstore

import (
	"fmt"
	"testing"
)

// A fenced write on a single Redis is cut into transactions between
// users, never inside one: a user's DEL and HSET in two transactions
// would leave readers a moment in which the user is missing.
func TestTransactionsKeepUsersWhole(t *testing.T) {
	var groups [][]command
	for i := range 1500 { // 1,500 users of 1 to 3 commands: over 2,000
		key := fmt.Sprintf("u%d", i)
		g := []command{{"hset", key, "v", "1"}}
		if i%2 == 1 {
			g = append([]command{{"del", key}}, g...)
		}
		if i%5 == 0 {
			g = append(g, command{"pexpireat", key, 1})
		}
		groups = append(groups, g)
	}
	groups = append(groups, make([]command, maxTransaction+5)) // one larger than a transaction
	var got [][]command
	transactions := 0
	for rest := groups; len(rest) > 0; {
		var next [][]command
		next, rest = nextTransaction(rest)
		transactions++
		size := 0
		for _, g := range next {
			size += len(g)
		}
		if size > maxTransaction && len(next) > 1 {
			t.Fatalf("transaction %d: %d commands in %d users, over %d", transactions, size, len(next), maxTransaction)
		}
		got = append(got, next...)
	}
	if transactions < 3 || len(got) != len(groups) {
		t.Fatalf("%d transactions of %d users, want at least 3 of %d", transactions, len(got), len(groups))
	}
	for i := range groups {
		if len(got[i]) != len(groups[i]) || len(got[i]) > 0 && &got[i][0] != &groups[i][0] {
			t.Fatalf("user %d cut or moved", i)
		}
	}
}
