package cri

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// cniConfig reads back the parts of 10-skiff.conflist a pod's addresses come from.
func cniConfig(t *testing.T, dir string) (bridge string, ranges [][]map[string]string, routes []map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "10-skiff.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Ranges [][]map[string]string `json:"ranges"`
				Routes []map[string]string   `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	return conf.Plugins[0].Bridge, conf.Plugins[0].IPAM.Ranges, conf.Plugins[0].IPAM.Routes
}

func TestASingleStackPodCIDRGivesPodsOneIPv4Range(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCNIConfig(dir, "10.244.0.0/24", true); err != nil {
		t.Fatal(err)
	}
	bridge, ranges, routes := cniConfig(t, dir)
	if want := [][]map[string]string{{{"subnet": "10.244.0.0/24"}}}; !reflect.DeepEqual(ranges, want) {
		t.Errorf("ranges = %v, want %v", ranges, want)
	}
	if want := []map[string]string{{"dst": "0.0.0.0/0"}}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	// the name single-stack nodes always had, so that an upgraded node keeps its bridge
	if bridge != "skiffe5d22f2f" {
		t.Errorf("bridge = %s", bridge)
	}
}

func TestADualStackPodCIDRGivesPodsARangeAndADefaultRouteOfEachFamily(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCNIConfig(dir, "10.42.0.0/24,fd42::/64", true); err != nil {
		t.Fatal(err)
	}
	bridge, ranges, routes := cniConfig(t, dir)
	if want := [][]map[string]string{{{"subnet": "10.42.0.0/24"}}, {{"subnet": "fd42::/64"}}}; !reflect.DeepEqual(ranges, want) {
		t.Errorf("ranges = %v, want %v", ranges, want)
	}
	if want := []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	single := t.TempDir()
	if err := WriteCNIConfig(single, "10.42.0.0/24", true); err != nil {
		t.Fatal(err)
	}
	if other, _, _ := cniConfig(t, single); other == bridge {
		t.Errorf("the dual-stack network shares bridge %s with the IPv4-only one", bridge)
	}
}

func TestWriteCNIConfigRefusesTwoCIDRsOfOneFamily(t *testing.T) {
	for _, cidr := range []string{"10.42.0.0/24,10.43.0.0/24", "fd42::/64,fd43::/64", "10.42.0.0/24,fd42::/64,fd43::/64", "nonsense"} {
		if err := WriteCNIConfig(t.TempDir(), cidr, true); err == nil {
			t.Errorf("WriteCNIConfig(%q) succeeded", cidr)
		}
	}
}

// ipMasq reads back whether the bridge masquerades.
func ipMasq(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "10-skiff.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			IPMasq bool `json:"ipMasq"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	return conf.Plugins[0].IPMasq
}

func TestThePodNetworkMasqueradesOnlyWhenNothingElseDoes(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCNIConfig(dir, "10.244.0.0/24", true); err != nil {
		t.Fatal(err)
	}
	if !ipMasq(t, dir) {
		t.Errorf("a standalone kubelet's bridge does not masquerade: its pods cannot reach the world")
	}
	// the node's proxy takes the masquerade over: the config is rewritten without it
	if err := WriteCNIConfig(dir, "10.244.0.0/24", false); err != nil {
		t.Fatal(err)
	}
	if ipMasq(t, dir) {
		t.Errorf("the bridge still masquerades: pods of other nodes would see the node's address")
	}
	rt, err := Dial(filepath.Join(dir, "none.sock"), Options{CNIConfDir: dir, NoMasquerade: false})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.SetPodCIDR("10.244.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if !ipMasq(t, dir) {
		t.Errorf("SetPodCIDR without NoMasquerade wrote a bridge that does not masquerade")
	}
	rt, err = Dial(filepath.Join(dir, "none.sock"), Options{CNIConfDir: dir, NoMasquerade: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.SetPodCIDR("10.244.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if ipMasq(t, dir) {
		t.Errorf("SetPodCIDR with NoMasquerade wrote a bridge that masquerades")
	}
}
