// Package migrations holds moim's schema migrations as Go code: each one
// builds its DDL with bun's query builder on row structs frozen inside its
// own file, so later model changes never alter an old migration.
package migrations

import (
	"context"

	"github.com/uptrace/bun/migrate"
)

// All returns every migration, in the order they apply. A new migration is a
// new file named <UTC timestamp>_<name>.go plus one entry here; entries are
// never edited or removed once released.
func All() *migrate.Migrations {
	ms := migrate.NewMigrations()
	add(ms, "20261125000001", "foundation", foundationUp, foundationDown)
	add(ms, "20261125000002", "members", membersUp, membersDown)
	add(ms, "20261125000003", "notifications", notificationsUp, notificationsDown)
	add(ms, "20261125000004", "matching", matchingUp, matchingDown)
	add(ms, "20261126000005", "rooms", roomsUp, roomsDown)
	add(ms, "20261126000006", "comments", commentsUp, commentsDown)
	add(ms, "20261126000007", "group_runs", groupRunsUp, groupRunsDown)
	add(ms, "20261207000008", "sessions", sessionsUp, sessionsDown)
	add(ms, "20261207000009", "sweeps", sweepsUp, sweepsDown)
	add(ms, "20261207000010", "storage_bounds", storageBoundsUp, storageBoundsDown)
	add(ms, "20261207000011", "images", imagesUp, imagesDown)
	add(ms, "20261207000012", "image_links", imageLinksUp, imageLinksDown)
	add(ms, "20261207000013", "points", pointsUp, pointsDown)
	add(ms, "20261207000014", "missions", missionsUp, missionsDown)
	add(ms, "20261207000015", "tasks", tasksUp, tasksDown)
	add(ms, "20261207000016", "match_reviews", matchReviewsUp, matchReviewsDown)
	add(ms, "20261207000017", "account_codes", accountCodesUp, accountCodesDown)
	add(ms, "20261207000019", "identities", identitiesUp, identitiesDown)
	return ms
}

// add registers a Go migration under an explicit name: bun's own Register
// derives the name from the caller's file and is meant for init().
func add(ms *migrate.Migrations, name, comment string, up, down migrate.MigrationFunc) {
	ms.Add(migrate.Migration{
		Name:    name,
		Comment: comment,
		Up:      run(up),
		Down:    run(down),
	})
}

func run(fn migrate.MigrationFunc) func(context.Context, *migrate.Migrator, *migrate.Migration) error {
	return func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
		return fn(ctx, m.DB())
	}
}
