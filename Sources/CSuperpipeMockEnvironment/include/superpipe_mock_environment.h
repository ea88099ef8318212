/*
 * Part of SuperpipeMock: the process-start hook that installs the mock client when SUPERPIPE_MOCK
 * is set (environment.c).
 */
#ifndef SUPERPIPE_MOCK_ENVIRONMENT_H
#define SUPERPIPE_MOCK_ENVIRONMENT_H

/* Always 1: referenced by SuperpipeMock so that the linker keeps the constructor's object file. */
int superpipe_mock_environment_linked(void);

#endif
