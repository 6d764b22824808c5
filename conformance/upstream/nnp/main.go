// Command nnp is the stand-in for the nonewprivs test image's binary: installed setuid root,
// it prints the effective uid it runs with, which tells whether no_new_privs held.
package main

import (
	"fmt"
	"syscall"
)

func main() { fmt.Printf("Effective uid: %d\n", syscall.Geteuid()) }
