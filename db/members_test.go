package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// The member fixtures live in dbtest, which the stores of db's
// sub-packages share; the short names stay for the tests here.
var (
	memberEpoch = dbtest.MemberEpoch
	newMember   = dbtest.NewMember
	mustCreate  = dbtest.MustCreateMember
	checkCode   = dbtest.CheckCode
)

func countMembers(t *testing.T, bdb *bun.DB) int64 {
	t.Helper()
	n, err := bdb.NewSelect().Table("members").Count(context.Background())
	if err != nil {
		t.Fatalf("count members: %v", err)
	}
	return n
}

func TestMembersCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		seoul := time.FixedZone("KST", 9*60*60)

		full := newMember("alice@example.com", "Alice")
		full.Phone = "+821012345678"
		full.SMSConsent = true
		full.SlackEmail = "alice@slack.example.com"
		full.Prefs = domain.NotificationPrefs{Mail: false, SMS: true, Slack: false}
		full.Role = domain.RoleAdmin
		full.CreatedAt = time.Date(2026, 11, 25, 18, 30, 15, 654321000, seoul)
		full.UpdatedAt = full.CreatedAt.Add(time.Second)

		bare := newMember("bob@example.com", "밥")
		bare.Prefs = domain.NotificationPrefs{}

		for _, m := range []*domain.Member{full, bare} {
			want := *m
			mustCreate(t, bdb, m)
			if len(m.ID) != 26 {
				t.Errorf("ID = %q, want a 26-character public id", m.ID)
			}
			want.ID = m.ID
			want.CreatedAt, want.UpdatedAt = want.CreatedAt.UTC(), want.UpdatedAt.UTC()
			if diff := cmp.Diff(&want, m); diff != "" {
				t.Errorf("Create changed the member beyond ID and UTC (-want +got):\n%s", diff)
			}

			got, err := members.FindByID(ctx, bdb, m.ID)
			if err != nil {
				t.Fatalf("FindByID: %v", err)
			}
			if diff := cmp.Diff(m, got); diff != "" {
				t.Errorf("FindByID (-created +found):\n%s", diff)
			}
			if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
				t.Errorf("times in %v and %v, want UTC", got.CreatedAt.Location(), got.UpdatedAt.Location())
			}

			got, err = members.FindByEmail(ctx, bdb, m.Email)
			if err != nil {
				t.Fatalf("FindByEmail: %v", err)
			}
			if diff := cmp.Diff(m, got); diff != "" {
				t.Errorf("FindByEmail (-created +found):\n%s", diff)
			}
		}

		for _, tt := range []struct {
			name string
			run  func() error
		}{
			{"FindByID unknown", func() error { _, err := members.FindByID(ctx, bdb, "nosuchmember"); return err }},
			{"FindByID empty", func() error { _, err := members.FindByID(ctx, bdb, ""); return err }},
			{"FindByEmail unknown", func() error { _, err := members.FindByEmail(ctx, bdb, "carol@example.com"); return err }},
			// The caller normalises; the store compares exactly.
			{"FindByEmail not normalised", func() error { _, err := members.FindByEmail(ctx, bdb, "Alice@example.com"); return err }},
			{"FindByEmail empty", func() error { _, err := members.FindByEmail(ctx, bdb, ""); return err }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.run()
				checkCode(t, err, domain.ENOTFOUND, "")
				if msg := domain.ErrorMessage(err); msg != "Member not found." {
					t.Errorf("message = %q, want %q", msg, "Member not found.")
				}
			})
		}
	})
}

func TestMembersCreateConflicts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		mustCreate(t, bdb, newMember("alice@example.com", "Alice"))

		normalised := func(s string) string {
			e, err := domain.NormalizeEmail("email", s)
			if err != nil {
				t.Fatalf("NormalizeEmail(%q): %v", s, err)
			}
			return e
		}
		tests := []struct {
			name      string
			email     string
			nickname  string
			wantCode  string
			wantField string
			wantMsg   string
		}{
			{"same email", "alice@example.com", "Bob", domain.EEMAILTAKEN, "email", "That e-mail address is already registered."},
			{"same email in other case, normalised", normalised(" ALICE@Example.com"), "Bob", domain.EEMAILTAKEN, "email", "That e-mail address is already registered."},
			{"same nickname", "bob@example.com", "Alice", domain.ENICKNAMETAKEN, "nickname", "That nickname is taken."},
			{"nickname in lower case", "bob@example.com", "alice", domain.ENICKNAMETAKEN, "nickname", "That nickname is taken."},
			{"nickname in upper case", "bob@example.com", "ALICE", domain.ENICKNAMETAKEN, "nickname", "That nickname is taken."},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := countMembers(t, bdb)
				err := members.Create(ctx, bdb, newMember(tt.email, tt.nickname))
				checkCode(t, err, tt.wantCode, tt.wantField)
				if msg := domain.ErrorMessage(err); msg != tt.wantMsg {
					t.Errorf("message = %q, want %q", msg, tt.wantMsg)
				}
				if after := countMembers(t, bdb); after != before {
					t.Errorf("%d members after a rejected Create, want %d", after, before)
				}
			})
		}

		// Neither taken: accepted.
		mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		mustCreate(t, bdb, newMember("carol@example.com", "Alicia"))
		if n := countMembers(t, bdb); n != 3 {
			t.Errorf("%d members, want 3", n)
		}

		// Both taken, by one member or by two: the address wins, inside a
		// transaction too.
		for _, tt := range []struct{ email, nickname string }{
			{"alice@example.com", "aLiCe"},
			{"alice@example.com", "bob"},
			{"bob@example.com", "ALICE"},
		} {
			before := countMembers(t, bdb)
			err := members.Create(ctx, bdb, newMember(tt.email, tt.nickname))
			checkCode(t, err, domain.EEMAILTAKEN, "email")
			err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return members.Create(ctx, tx, newMember(tt.email, tt.nickname))
			})
			checkCode(t, err, domain.EEMAILTAKEN, "email")
			if after := countMembers(t, bdb); after != before {
				t.Errorf("%d members after a rejected Create, want %d", after, before)
			}
		}

		// Only the nickname taken, inside a transaction: still reported as
		// such (PostgreSQL has aborted the transaction by then).
		err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return members.Create(ctx, tx, newMember("dave@example.com", "BOB"))
		})
		checkCode(t, err, domain.ENICKNAMETAKEN, "nickname")
	})
}

func TestMembersStoreTextVerbatim(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		tests := []struct {
			email, nickname, slack string
		}{
			{"o'reilly@example.com", "'; DROP TABLE members;--", "x'or'1'='1@example.com"},
			{"robert'--@example.com", "<script>alert(1)</script>", "{x}|`a`&b=c@example.com"},
			{"html@example.com", "<b>hi</b>", `a\b@example.com`},
			{"korean@example.com", "모임 🎉 Ünïcödé", "ko@example.com"},
		}
		for _, tt := range tests {
			m := newMember(tt.email, tt.nickname)
			m.SlackEmail = tt.slack
			mustCreate(t, bdb, m)
			got, err := members.FindByEmail(ctx, bdb, tt.email)
			if err != nil {
				t.Fatalf("FindByEmail(%q): %v", tt.email, err)
			}
			if diff := cmp.Diff(m, got); diff != "" {
				t.Errorf("%q round trip (-created +found):\n%s", tt.nickname, diff)
			}
		}
		if n := countMembers(t, bdb); n != int64(len(tests)) {
			t.Errorf("%d members, want %d", n, len(tests))
		}
	})
}

func TestMembersUpdate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		alice := newMember("alice@example.com", "Alice")
		alice.Phone = "+821012345678"
		alice.SMSConsent = true
		alice.SlackEmail = "alice@slack.example.com"
		mustCreate(t, bdb, alice)
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))

		ptr := func(s string) *string { return &s }
		yes, no := true, false
		later := memberEpoch.Add(time.Hour)

		steps := []struct {
			name   string
			upd    domain.MemberUpdate
			change func(m *domain.Member)
		}{
			{"nothing but the time", domain.MemberUpdate{}, func(*domain.Member) {}},
			{"nickname and prefs", domain.MemberUpdate{Nickname: ptr("Alicia"), PrefMail: &no, PrefSlack: &no}, func(m *domain.Member) {
				m.Nickname = "Alicia"
				m.Prefs.Mail, m.Prefs.Slack = false, false
			}},
			{"own nickname in another case", domain.MemberUpdate{Nickname: ptr("ALICIA")}, func(m *domain.Member) { m.Nickname = "ALICIA" }},
			{"clear phone and consent", domain.MemberUpdate{Phone: ptr(""), SMSConsent: &no}, func(m *domain.Member) {
				m.Phone, m.SMSConsent = "", false
			}},
			{"clear slack", domain.MemberUpdate{SlackEmail: ptr("")}, func(m *domain.Member) { m.SlackEmail = "" }},
			{"set phone and slack again", domain.MemberUpdate{Phone: ptr("+14155552671"), SlackEmail: ptr("a@b.example.com"), PrefSMS: &yes}, func(m *domain.Member) {
				m.Phone, m.SlackEmail, m.Prefs.SMS = "+14155552671", "a@b.example.com", true
			}},
			{"password", domain.MemberUpdate{PasswordHash: ptr("$argon2id$new")}, func(m *domain.Member) { m.PasswordHash = "$argon2id$new" }},
			// Nothing changes at all: MySQL reports no affected row.
			{"the same again", domain.MemberUpdate{PasswordHash: ptr("$argon2id$new")}, func(*domain.Member) {}},
			{"sql-looking nickname", domain.MemberUpdate{Nickname: ptr("'; DROP TABLE members;--")}, func(m *domain.Member) {
				m.Nickname = "'; DROP TABLE members;--"
			}},
		}
		want := *alice
		for _, s := range steps {
			s.change(&want)
			want.UpdatedAt = later
			got, err := members.Update(ctx, bdb, alice.ID, s.upd, later.In(time.FixedZone("X", -3*60*60)))
			if err != nil {
				t.Fatalf("%s: Update: %v", s.name, err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("%s: Update returned (-want +got):\n%s", s.name, diff)
			}
			found, err := members.FindByID(ctx, bdb, alice.ID)
			if err != nil {
				t.Fatalf("%s: FindByID: %v", s.name, err)
			}
			if diff := cmp.Diff(&want, found); diff != "" {
				t.Errorf("%s: stored (-want +got):\n%s", s.name, diff)
			}
		}

		// Bob is untouched by all of it.
		if got, err := members.FindByID(ctx, bdb, bob.ID); err != nil {
			t.Fatal(err)
		} else if diff := cmp.Diff(bob, got); diff != "" {
			t.Errorf("other member changed (-want +got):\n%s", diff)
		}

		// Taking Bob's nickname, in any case, fails and changes nothing.
		for _, nick := range []string{"Bob", "bob", "BOB"} {
			_, err := members.Update(ctx, bdb, alice.ID, domain.MemberUpdate{Nickname: ptr(nick), PrefMail: &yes}, later.Add(time.Hour))
			checkCode(t, err, domain.ENICKNAMETAKEN, "nickname")
			if got, err := members.FindByID(ctx, bdb, alice.ID); err != nil {
				t.Fatal(err)
			} else if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("nickname %q: rejected Update changed the member (-want +got):\n%s", nick, diff)
			}
		}

		_, err := members.Update(ctx, bdb, "nosuchmember", domain.MemberUpdate{Nickname: ptr("Nobody")}, later)
		checkCode(t, err, domain.ENOTFOUND, "")
	})
}

func TestMembersSetRole(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		m := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		later := memberEpoch.Add(time.Minute)

		// Twice with the same values: MySQL then counts no affected row.
		for i := range 2 {
			if err := members.SetRole(ctx, bdb, m.ID, domain.RoleAdmin, later); err != nil {
				t.Fatalf("SetRole %d: %v", i+1, err)
			}
		}
		got, err := members.FindByID(ctx, bdb, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != domain.RoleAdmin || !got.IsAdmin() {
			t.Errorf("Role = %v, want admin", got.Role)
		}
		if !got.UpdatedAt.Equal(later) {
			t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, later)
		}

		checkCode(t, members.SetRole(ctx, bdb, "nosuchmember", domain.RoleAdmin, later), domain.ENOTFOUND, "")
		checkCode(t, members.SetRole(ctx, bdb, m.ID, domain.Role(0), later), domain.EINVALID, "role")
		if err := members.Delete(ctx, bdb, m.ID, later); err != nil {
			t.Fatal(err)
		}
		checkCode(t, members.SetRole(ctx, bdb, m.ID, domain.RoleMember, later), domain.ENOTFOUND, "")
	})
}

func TestMembersDelete(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		members := db.Members{}
		alice := newMember("alice@example.com", "Alice")
		alice.Phone = "+821012345678"
		alice.SlackEmail = "alice@slack.example.com"
		alice.SMSConsent = true
		mustCreate(t, bdb, alice)
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		deletedAt := memberEpoch.Add(24 * time.Hour)

		if err := members.Delete(ctx, bdb, alice.ID, deletedAt); err != nil {
			t.Fatalf("Delete: %v", err)
		}

		// The row stays, with the nickname for history and nothing personal.
		var (
			email, nicknameKey, phone, slack sql.NullString
			nickname, hash                   string
			gotDeletedAt                     time.Time
		)
		err := bdb.NewSelect().Table("members").
			Column("email", "nickname", "nickname_key", "phone", "slack_email", "password_hash", "deleted_at").
			Where("public_id = ?", alice.ID).
			Scan(ctx, &email, &nickname, &nicknameKey, &phone, &slack, &hash, &gotDeletedAt)
		if err != nil {
			t.Fatalf("read deleted row: %v", err)
		}
		if email.Valid || nicknameKey.Valid || phone.Valid || slack.Valid || hash != "" {
			t.Errorf("deleted row keeps personal data: email %v, nickname_key %v, phone %v, slack_email %v, password_hash %q; want NULL, NULL, NULL, NULL, \"\"",
				email, nicknameKey, phone, slack, hash)
		}
		if nickname != "Alice" {
			t.Errorf("deleted row nickname = %q, want Alice kept", nickname)
		}
		if !gotDeletedAt.Equal(deletedAt) {
			t.Errorf("deleted_at = %v, want %v", gotDeletedAt, deletedAt)
		}

		ptr := func(s string) *string { return &s }
		for _, tt := range []struct {
			name string
			run  func() error
		}{
			{"FindByID", func() error { _, err := members.FindByID(ctx, bdb, alice.ID); return err }},
			{"FindByEmail", func() error { _, err := members.FindByEmail(ctx, bdb, "alice@example.com"); return err }},
			{"Update", func() error {
				_, err := members.Update(ctx, bdb, alice.ID, domain.MemberUpdate{Nickname: ptr("Ghost")}, deletedAt)
				return err
			}},
			{"Delete again", func() error { return members.Delete(ctx, bdb, alice.ID, deletedAt.Add(time.Hour)) }},
			{"Delete unknown", func() error { return members.Delete(ctx, bdb, "nosuchmember", deletedAt) }},
		} {
			checkCode(t, tt.run(), domain.ENOTFOUND, "")
		}

		// The address and nickname are free again, in any case.
		again := mustCreate(t, bdb, newMember("alice@example.com", "ALICE"))
		if again.ID == alice.ID {
			t.Fatal("new sign-up got the deleted member's id")
		}
		got, err := members.FindByEmail(ctx, bdb, "alice@example.com")
		if err != nil {
			t.Fatalf("FindByEmail after sign-up again: %v", err)
		}
		if got.ID != again.ID {
			t.Errorf("FindByEmail = member %s, want the new one %s", got.ID, again.ID)
		}

		// Several deleted members coexist (NULL is not a duplicate).
		if err := members.Delete(ctx, bdb, bob.ID, deletedAt); err != nil {
			t.Fatalf("Delete bob: %v", err)
		}
		if err := members.Delete(ctx, bdb, again.ID, deletedAt); err != nil {
			t.Fatalf("Delete the new alice: %v", err)
		}
		if n := countMembers(t, bdb); n != 3 {
			t.Errorf("%d rows, want 3 (soft deletion keeps them)", n)
		}
	})
}

func TestMembersConcurrentSignUp(t *testing.T) {
	t.Parallel()
	const workers = 20
	tests := []struct {
		name      string
		member    func(i int) *domain.Member
		wantCode  string
		wantField string
	}{
		{"same email", func(i int) *domain.Member {
			return newMember("race@example.com", fmt.Sprintf("Racer %d", i))
		}, domain.EEMAILTAKEN, "email"},
		{"same nickname in different cases", func(i int) *domain.Member {
			nick := "Racer"
			if i%2 == 1 {
				nick = "rACER"
			}
			return newMember(fmt.Sprintf("racer%d@example.com", i), nick)
		}, domain.ENICKNAMETAKEN, "nickname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				ctx := context.Background()
				errs := make([]error, workers)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range workers {
					wg.Go(func() {
						<-start
						errs[i] = db.Members{}.Create(ctx, bdb, tt.member(i))
					})
				}
				close(start)
				wg.Wait()

				ok := 0
				for i, err := range errs {
					if err == nil {
						ok++
						continue
					}
					var de *domain.Error
					if !errors.As(err, &de) || de.Code != tt.wantCode || de.Field != tt.wantField {
						t.Errorf("worker %d: %v, want %s on %q", i, err, tt.wantCode, tt.wantField)
					}
				}
				if ok != 1 {
					t.Errorf("%d sign-ups succeeded, want exactly 1", ok)
				}
				if n := countMembers(t, bdb); n != 1 {
					t.Errorf("%d members stored, want 1", n)
				}
			})
		})
	}
}

// TestTranslateMySQLDuplicateKey covers the key names of both servers, since
// a test run has only one of them: MariaDB reports the index, MySQL 8
// "table.index".
func TestTranslateMySQLDuplicateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		message  string
		wantCode string
	}{
		{"MariaDB email", "Duplicate entry 'a@example.com' for key 'members_email_key'", domain.EEMAILTAKEN},
		{"MySQL 8 email", "Duplicate entry 'a@example.com' for key 'members.members_email_key'", domain.EEMAILTAKEN},
		{"MariaDB nickname", "Duplicate entry 'alice' for key 'members_nickname_key'", domain.ENICKNAMETAKEN},
		{"MySQL 8 nickname", "Duplicate entry 'alice' for key 'members.members_nickname_key'", domain.ENICKNAMETAKEN},
		// The entry is printed unescaped, so it may imitate the key.
		{"entry naming another key", "Duplicate entry 'x' for key 'members_email_key'' for key 'members.members_nickname_key'", domain.ENICKNAMETAKEN},
		{"public id", "Duplicate entry 'abc' for key 'members.members_public_id_key'", domain.ECONFLICT},
		{"other table", "Duplicate entry 'abc' for key 'pings_public_id_key'", domain.ECONFLICT},
		{"no key in message", "Duplicate entry 'abc'", domain.ECONFLICT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cause := &mysql.MySQLError{Number: 1062, SQLState: [5]byte{'2', '3', '0', '0', '0'}, Message: tt.message}
			err := db.Translate(fmt.Errorf("insert: %w", cause))
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Errorf("code = %q, want %q", code, tt.wantCode)
			}
			if !errors.Is(err, cause) {
				t.Error("translated error lost its driver cause")
			}
		})
	}
}
