/*
 * Part of SuperpipeMock. When a process that links SuperpipeMock starts, this constructor lets the
 * mock client install itself as Superpipe's device backend if the environment variable
 * SUPERPIPE_MOCK names a mock directory (MockDeviceBackend.swift). That is how processes that
 * cannot be changed (superpipectl, a test's child process, a C program linked with the C API)
 * reach a mock adapter. No logic here: the Swift side reads the variable.
 */
#include "superpipe_mock_environment.h"

/* Defined in SuperpipeMock (Swift, @_cdecl). */
extern void superpipe_mock_install_from_environment(void);

__attribute__((constructor)) static void superpipe_mock_environment_init(void) {
	superpipe_mock_install_from_environment();
}

int superpipe_mock_environment_linked(void) { return 1; }
