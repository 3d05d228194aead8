// Command nfsplugin runs csi-driver-nfs's CSI server (controller and node services on one socket).
//
// The vendored tag (../shared/vendor/csi/csi-driver-nfs-v4.13.4) carries the driver's packages but not its
// command, so this small main is sharedvol's own: it takes the flags k8s/nfs/driver passes (and the driver's other
// options) and hands them to nfs.NewDriver. Built by scripts/vm/go-build.sh inside a copy of that tree.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubernetes-csi/csi-driver-nfs/pkg/nfs"
	"k8s.io/klog/v2"
)

func main() {
	o := nfs.DriverOptions{}
	flag.StringVar(&o.Endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint")
	flag.StringVar(&o.NodeID, "nodeid", "", "this node's name")
	flag.StringVar(&o.DriverName, "drivername", "nfs.csi.k8s.io", "the CSI driver's name")
	flag.Uint64Var(&o.MountPermissions, "mount-permissions", 0, "mode of a new volume's directory (0: leave it)")
	flag.StringVar(&o.WorkingMountDir, "working-mount-dir", "/tmp", "where the controller mounts the share")
	flag.StringVar(&o.DefaultOnDeletePolicy, "default-ondelete-policy", "", "delete, retain or archive")
	flag.IntVar(&o.VolStatsCacheExpireInMinutes, "vol-stats-cache-expire-in-minutes", 10, "volume stats cache")
	flag.BoolVar(&o.RemoveArchivedVolumePath, "remove-archived-volume-path", true, "replace an older archive")
	flag.BoolVar(&o.UseTarCommandInSnapshot, "use-tar-command-in-snapshot", false, "snapshots with tar(1)")
	flag.BoolVar(&o.EnableSnapshotCompression, "enable-snapshot-compression", true, "gzip snapshots")
	version := flag.Bool("version", false, "print the version and exit")
	klog.InitFlags(nil)
	flag.Parse()
	if *version {
		info, err := nfs.GetVersionYAML(o.DriverName)
		if err != nil {
			klog.Fatalln(err)
		}
		fmt.Println(info)
		os.Exit(0)
	}
	if o.NodeID == "" {
		klog.Fatalln("--nodeid is required")
	}
	nfs.NewDriver(&o).Run(false)
	os.Exit(0)
}
