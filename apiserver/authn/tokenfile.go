package authn

import (
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
)

// errInvalidBearerToken is what a bearer token that no authenticator knows yields, word for
// word as upstream.
var errInvalidBearerToken = errors.New("invalid bearer token")

// TokenFile authenticates "Authorization: Bearer <token>" against a static token file, the
// format of upstream's --token-auth-file: a CSV file of token,user,uid[,"group1,group2"] lines.
// The file is read once; a change needs a restart, as upstream.
type TokenFile struct {
	users map[string]*User
}

var _ Authenticator = (*TokenFile)(nil)

// LoadTokenFile reads a token file. A line with fewer than three columns is an error; a line
// with an empty token is skipped; of two lines with the same token the later wins.
func LoadTokenFile(path string) (*TokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseTokenFile(f, path)
}

func parseTokenFile(in io.Reader, path string) (*TokenFile, error) {
	reader := csv.NewReader(in)
	reader.FieldsPerRecord = -1
	t := &TokenFile{users: map[string]*User{}}
	for record := 1; ; record++ {
		fields, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("token file %q: %w", path, err)
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("token file %q must have at least 3 columns (token, user name, user uid), found %d",
				path, len(fields))
		}
		token := fields[0]
		if token == "" {
			slog.Warn("empty token in token file, skipped", "file", path, "record", record)
			continue
		}
		if _, dup := t.users[token]; dup {
			slog.Warn("duplicate token in token file, the later record wins", "file", path, "record", record)
		}
		user := &User{Name: fields[1], UID: fields[2]}
		if len(fields) >= 4 {
			for g := range strings.SplitSeq(fields[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					user.Groups = append(user.Groups, g)
				}
			}
		}
		t.users[token] = user
	}
	return t, nil
}

// Authenticate implements Authenticator. A request without an "Authorization: Bearer" header
// is not TokenFile's to judge; a bearer token not in the file is an error. On success the
// Authorization header is removed, so that nothing after authentication can pass the token on.
func (t *TokenFile) Authenticate(r *http.Request) (*User, bool, error) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, false, nil
	}
	user, ok := t.lookup(token)
	if !ok {
		return nil, false, errInvalidBearerToken
	}
	r.Header.Del("Authorization")
	u := *user
	u.Groups = slices.Clone(user.Groups)
	return withAuthenticatedGroup(&u), true, nil
}

// lookup compares token against every known token in constant time, so that the time a
// request takes does not reveal how much of a token was right.
func (t *TokenFile) lookup(token string) (*User, bool) {
	var found *User
	for known, user := range t.users {
		if subtle.ConstantTimeCompare([]byte(known), []byte(token)) == 1 {
			found = user
		}
	}
	return found, found != nil
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header, as upstream's
// bearertoken authenticator reads it: the scheme is case-insensitive and an empty token is no
// token.
func bearerToken(r *http.Request) (string, bool) {
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	if auth == "" {
		return "", false
	}
	parts := strings.SplitN(auth, " ", 3)
	if len(parts) < 2 || !strings.EqualFold(parts[0], "bearer") || parts[1] == "" {
		return "", false
	}
	return parts[1], true
}
