package dbtest

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/taskdb"
)

// CatalogueIDs returns the seeded skill catalogue's ids by name.
func CatalogueIDs(tb testing.TB, bdb bun.IDB) (cats, abilities map[string]int64) {
	tb.Helper()
	c, err := (taskdb.Skills{}).Catalogue(context.Background(), bdb)
	if err != nil {
		tb.Fatal(err)
	}
	cats, abilities = map[string]int64{}, map[string]int64{}
	for _, x := range c.Categories {
		cats[x.Name] = x.ID
	}
	for _, a := range c.Abilities {
		abilities[a.Name] = a.ID
	}
	return cats, abilities
}
