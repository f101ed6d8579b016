/* record: being written (issue 5). */
