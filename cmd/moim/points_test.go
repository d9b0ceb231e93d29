package main

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

func TestPointsCheckCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "points.db")
	vars := map[string]string{"MOIM_DATABASE_URL": dbURL}
	if _, err := runMoim(t, vars, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	out, err := runMoim(t, vars, "points", "check")
	if err != nil || out != "ok: 0 members, balances equal the sum of their entries\n" {
		t.Fatalf("points check of an empty wallet: %q, %v", out, err)
	}

	bdb := openTestDB(t, dbURL)
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	m := &domain.Member{Email: "mina@example.com", PasswordHash: "x", Nickname: "mina",
		Prefs: domain.DefaultNotificationPrefs(), Role: domain.RoleMember, CreatedAt: at, UpdatedAt: at}
	if err := (db.Members{}).Create(ctx, bdb, m); err != nil {
		t.Fatal(err)
	}
	var key int64
	if err := bdb.NewSelect().Table("members").Column("id").Where("public_id = ?", m.ID).Scan(ctx, &key); err != nil {
		t.Fatal(err)
	}
	for i, amount := range []int64{100, -40} {
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			_, err := (missiondb.Points{}).Post(ctx, tx, missiondb.PointPost{MemberKey: key, Amount: amount, Kind: domain.PointAdjustment,
				Key: "admin:" + string(rune('a'+i)), Reason: "test", Now: at})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err = runMoim(t, vars, "points", "check")
	if err != nil || out != "ok: 1 members, balances equal the sum of their entries\n" {
		t.Fatalf("points check: %q, %v", out, err)
	}

	// A balance edited by hand: listed, and the command fails.
	if _, err := bdb.NewUpdate().Table("point_balances").Set("balance = 1000").Where("member_id = ?", key).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	out, err = runMoim(t, vars, "points", "check")
	if err == nil {
		t.Fatal("points check of a tampered balance succeeded")
	}
	if want := "mismatch: member " + m.ID + " balance 1000, entries sum to 60\n"; out != want {
		t.Errorf("points check printed %q, want %q", out, want)
	}
	if !strings.Contains(err.Error(), "1 of 1 members") {
		t.Errorf("error = %v", err)
	}

	if _, err := runMoim(t, vars, "points"); err == nil || !strings.Contains(err.Error(), "check") {
		t.Errorf("moim points without a subcommand: %v", err)
	}
}

// TestPointsHint runs the curl the all-in-one banner prints (with its
// generated admin password) and finds the points on the admin's wallet.
func TestPointsHint(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"MOIM_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "moim.db"),
		"MOIM_HTTP_ADDR":    "127.0.0.1:0",
		"MOIM_LOG_LEVEL":    "warn",
	}
	banner, _ := startMoim(t, vars)
	hint := banner["Points"]
	m := regexp.MustCompile(`^curl -u '([^':]+):([^']+)' -H 'Content-Type: application/json' -d '([^']+)' (\S+)$`).FindStringSubmatch(hint)
	if m == nil {
		t.Fatalf("banner's Points line is not the curl of an adjustment: %q", hint)
	}
	user, password, body, url := m[1], m[2], m[3], m[4]
	if url != banner["API"]+"/v1/admin/points/adjustments" || !strings.Contains(banner["Admin"], password) {
		t.Errorf("hint %q does not match the banner %q", hint, banner)
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the hint's curl: status = %d, want 201", resp.StatusCode)
	}
	token := login(t, banner["API"], "admin@moim.localhost", password)
	var wallet struct {
		Balance int64 `json:"balance"`
	}
	decodeBody(t, doJSON(t, http.MethodGet, banner["API"]+"/v1/me/points", token, ""), &wallet)
	if wallet.Balance != 10000 {
		t.Errorf("admin's balance = %d, want 10000", wallet.Balance)
	}
}
